import type { PorticoProcess } from './portico-process';
import { waitFor } from './wait';
import { open, WsConnection } from './ws-client';

/**
 * Opens a WebSocket to the echo plugin on `host` and checks it echoes; the connection is added
 * to `sockets` so the suite can close whatever is still open at its end.
 */
export async function echoOn(
  host: PorticoProcess,
  token: string,
  sockets: WsConnection[],
): Promise<WsConnection> {
  const conn = await open(`${host.wsUrl}/plugin-ws/echo`, { token });
  sockets.push(conn);
  conn.ws.send('hello');
  const reply = (await conn.next()).data.toString();
  if (!reply.includes('hello')) throw new Error(`echo answered ${reply}`);
  return conn;
}

/** Waits until `check` holds on every replica at the same time. */
export function allConverge(
  replicas: readonly PorticoProcess[],
  what: string,
  check: (host: PorticoProcess) => Promise<boolean>,
): Promise<true> {
  return waitFor(
    async () => (await Promise.all(replicas.map(check))).every(Boolean),
    15_000,
    `every replica: ${what}`,
  );
}

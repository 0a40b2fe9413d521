import { connect, Socket } from 'node:net';

import { PluginException, PluginExceptionCode } from '../shared/plugin.exception';

/** A plugin's answer to the forwarded WebSocket handshake. */
export interface UpstreamHandshake {
  readonly socket: Socket;
  readonly statusCode: number;
  /** Lower-cased header names; repeated headers joined with ", ". */
  readonly headers: Record<string, string>;
  /** Bytes the plugin sent after its response head (already frames). */
  readonly rest: Buffer;
}

export interface DialOptions {
  readonly port: number;
  /** Request target, e.g. `/ws/sub?x=1`. */
  readonly path: string;
  readonly headers: Record<string, string | string[]>;
  readonly timeoutMs: number;
}

const MAX_HEAD_BYTES = 16 * 1024;
const HEAD_END = Buffer.from('\r\n\r\n');

/**
 * Opens a TCP connection to the plugin on 127.0.0.1 and performs the HTTP upgrade request,
 * resolving with the plugin's response once its head is complete. The socket is returned paused
 * and without listeners, ready to be spliced. Failures are PluginExceptions:
 * UPSTREAM_REFUSED (connection refused, closed, malformed answer) or UPSTREAM_TIMEOUT.
 */
export function dialUpstream(options: DialOptions): Promise<UpstreamHandshake> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port: options.port });
    let received: Buffer = Buffer.alloc(0);
    let settled = false;
    const timer = setTimeout(
      () =>
        fail(PluginExceptionCode.UPSTREAM_TIMEOUT, 'plugin did not answer the handshake in time'),
      options.timeoutMs,
    );

    const cleanup = (): void => {
      settled = true;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
    };
    const fail = (code: PluginExceptionCode, message: string): void => {
      if (settled) return;
      cleanup();
      socket.destroy();
      reject(new PluginException(code, message));
    };
    const onError = (err: Error): void =>
      fail(PluginExceptionCode.UPSTREAM_REFUSED, `plugin connection failed: ${err.message}`);
    const onClose = (): void =>
      fail(
        PluginExceptionCode.UPSTREAM_REFUSED,
        'plugin closed the connection during the handshake',
      );
    const onData = (chunk: Buffer): void => {
      received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
      const end = received.indexOf(HEAD_END);
      if (end === -1) {
        if (received.length > MAX_HEAD_BYTES)
          fail(PluginExceptionCode.UPSTREAM_REFUSED, 'plugin handshake response too large');
        return;
      }
      const parsed = parseHead(received.subarray(0, end).toString('latin1'));
      if (parsed === undefined) {
        fail(PluginExceptionCode.UPSTREAM_REFUSED, 'plugin sent a malformed handshake response');
        return;
      }
      socket.pause();
      cleanup();
      resolve({ socket, ...parsed, rest: received.subarray(end + HEAD_END.length) });
    };

    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
    socket.on('connect', () =>
      socket.write(requestHead(options.path, options.port, options.headers)),
    );
  });
}

function requestHead(
  path: string,
  port: number,
  headers: Record<string, string | string[]>,
): string {
  let head = `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n`;
  for (const [name, value] of Object.entries(headers)) {
    for (const v of Array.isArray(value) ? value : [value]) {
      // Header injection is impossible from parsed values, but be strict anyway.
      if (/[\r\n]/.test(v)) continue;
      head += `${name}: ${v}\r\n`;
    }
  }
  return head + '\r\n';
}

function parseHead(
  head: string,
): { statusCode: number; headers: Record<string, string> } | undefined {
  const lines = head.split('\r\n');
  const status = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(lines[0] ?? '');
  if (status === null) return undefined;
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) return undefined;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  return { statusCode: Number(status[1]), headers };
}

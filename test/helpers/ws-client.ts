import { WebSocket } from 'ws';
import type { ClientOptions, RawData } from 'ws';

export interface Received {
  data: Buffer;
  isBinary: boolean;
}

export interface WsConnection {
  ws: WebSocket;
  /** Every message received so far, in order. */
  received: Received[];
  /** Resolves on close with the code and reason the client saw. */
  closed: Promise<{ code: number; reason: string }>;
  /** Resolves with the next message. */
  next(): Promise<Received>;
}

export type ConnectResult =
  { kind: 'open'; conn: WsConnection } | { kind: 'rejected'; status: number; body: string };

/** Opens a WebSocket; an HTTP answer instead of 101 is returned as `rejected` with its status. */
export function connect(
  url: string,
  options: {
    token?: string;
    protocols?: string[];
    headers?: Record<string, string>;
  } & ClientOptions = {},
): Promise<ConnectResult> {
  const { token, protocols, headers, ...rest } = options;
  const allHeaders: Record<string, string> = { ...headers };
  if (token !== undefined) allHeaders.authorization = `Bearer ${token}`;
  const ws = new WebSocket(url, protocols ?? [], {
    headers: allHeaders,
    maxPayload: 1 << 30,
    ...rest,
  });
  const received: Received[] = [];
  let waiter: ((m: Received) => void) | undefined;
  ws.on('message', (data: RawData, isBinary: boolean) => {
    const m = { data: toBuffer(data), isBinary };
    received.push(m);
    const w = waiter;
    waiter = undefined;
    w?.(m);
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })),
  );
  let consumed = 0;
  const conn: WsConnection = {
    ws,
    received,
    closed,
    next: () =>
      new Promise<Received>((resolve) => {
        const m = received[consumed];
        if (m !== undefined) {
          consumed++;
          resolve(m);
          return;
        }
        waiter = (msg) => {
          consumed++;
          resolve(msg);
        };
      }),
  };
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve({ kind: 'open', conn }));
    ws.once('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        resolve({
          kind: 'rejected',
          status: res.statusCode ?? 0,
          body: Buffer.concat(chunks).toString(),
        });
        ws.terminate();
      });
    });
    ws.once('error', (err) => reject(err));
  });
}

/** Opens a WebSocket that must succeed. */
export async function open(
  url: string,
  options: Parameters<typeof connect>[1] = {},
): Promise<WsConnection> {
  const result = await connect(url, options);
  if (result.kind !== 'open') throw new Error(`expected 101, got ${result.status}: ${result.body}`);
  return result.conn;
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

import { randomBytes } from 'node:crypto';
import { connect, Socket } from 'node:net';

import { http } from '../helpers/http-client';
import { parseFrames, rawFrame } from '../helpers/raw-ws';
import { pluginsDirWith } from '../helpers/plugins-dir';
import { startTestApp, TestApp } from '../helpers/test-app';
import { waitFor } from '../helpers/wait';

/**
 * A client written against the socket, not a WebSocket library: what an independent or
 * impatient client may do on the wire, and what Portico must still get right.
 */
describe('a raw-socket WebSocket client', () => {
  let t: TestApp;
  let plugins: ReturnType<typeof pluginsDirWith>;
  const sockets: Socket[] = [];

  beforeAll(async () => {
    plugins = pluginsDirWith(['bundled:echo']);
    t = await startTestApp({ pluginsDir: plugins.dir });
    await waitFor(
      async () => (await http(t.baseUrl, 'GET', '/readyz')).status === 200,
      15_000,
      'readiness',
    );
  });

  afterEach(() => {
    for (const s of sockets.splice(0)) s.destroy();
  });

  afterAll(async () => {
    await t?.close();
    plugins?.remove();
  });

  const request = (): Buffer =>
    Buffer.from(
      'GET /plugin-ws/echo HTTP/1.1\r\n' +
        `Host: 127.0.0.1:${t.port}\r\n` +
        'Connection: keep-alive, Upgrade\r\n' +
        'Upgrade: websocket\r\n' +
        'Sec-WebSocket-Version: 13\r\n' +
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n` +
        `Authorization: Bearer ${t.token()}\r\n\r\n`,
      'latin1',
    );

  /** Collects what the server sends: its response head, then its frames. */
  function reader(socket: Socket): {
    head: () => string | undefined;
    frames: { opcode: number; payload: Buffer }[];
  } {
    let buffered = Buffer.alloc(0);
    let head: string | undefined;
    const frames: { opcode: number; payload: Buffer }[] = [];
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (head === undefined) {
        const end = buffered.indexOf('\r\n\r\n');
        if (end === -1) return;
        head = buffered.subarray(0, end).toString('latin1');
        buffered = buffered.subarray(end + 4);
      }
      const parsed = parseFrames(buffered);
      frames.push(...parsed.frames);
      buffered = Buffer.from(parsed.rest);
    });
    return { head: () => head, frames };
  }

  /**
   * Writes `bytes` and lets the server read them before the next write: the write is in the
   * kernel once its callback runs, and the server (in this process) reads it in the poll phase
   * that comes before the check phase's setImmediate.
   */
  async function writeApart(socket: Socket, bytes: Buffer): Promise<void> {
    await new Promise<void>((resolve, reject) =>
      socket.write(bytes, (err) => (err ? reject(err) : resolve())),
    );
    await new Promise((resolve) => setImmediate(resolve));
  }

  async function opened(): Promise<Socket> {
    const socket = connect(t.port, '127.0.0.1');
    socket.setNoDelay(true);
    sockets.push(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return socket;
  }

  it('relays frames sent in the same write as the upgrade request, in order', async () => {
    const socket = await opened();
    const got = reader(socket);
    const messages = Array.from({ length: 50 }, (_, i) => `early ${i}`);
    socket.write(Buffer.concat([request(), ...messages.map((m) => rawFrame(0x1, Buffer.from(m)))]));
    await waitFor(() => got.frames.length >= messages.length, 10_000, 'echoes');
    expect(got.head()).toMatch(/^HTTP\/1\.1 101 /);
    expect(got.frames.map((f) => f.opcode)).toEqual(messages.map(() => 0x1));
    expect(got.frames.map((f) => f.payload.toString())).toEqual(messages);
  });

  it('takes a request that arrives a few bytes at a time, then a frame split mid-header', async () => {
    const socket = await opened();
    const got = reader(socket);
    const bytes = request();
    for (let i = 0; i < bytes.length; i += 7) await writeApart(socket, bytes.subarray(i, i + 7));
    await waitFor(() => got.head() !== undefined, 10_000, '101');
    expect(got.head()).toMatch(/^HTTP\/1\.1 101 /);
    const frame = rawFrame(0x2, randomBytes(300));
    await writeApart(socket, frame.subarray(0, 1));
    await writeApart(socket, frame.subarray(1, 3));
    socket.write(frame.subarray(3));
    await waitFor(() => got.frames.length >= 1, 10_000, 'echo');
    expect(got.frames[0]?.opcode).toBe(0x2);
    expect(got.frames[0]?.payload.length).toBe(300);
  });

  it('completes the close handshake the client starts and ends the connection', async () => {
    const socket = await opened();
    const got = reader(socket);
    const ended = new Promise<void>((resolve) => socket.once('end', resolve));
    const close = Buffer.alloc(2);
    close.writeUInt16BE(1000);
    socket.write(Buffer.concat([request(), rawFrame(0x8, close)]));
    await ended;
    expect(got.head()).toMatch(/^HTTP\/1\.1 101 /);
    expect(got.frames).toHaveLength(1);
    expect(got.frames[0]?.opcode).toBe(0x8);
    expect(got.frames[0]?.payload.readUInt16BE(0)).toBe(1000);
  });
});

import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { AddressInfo, createServer, Socket } from 'node:net';

import type { Principal } from '../../../src/auth/principal';
import { RelayHooks, WsRelay } from '../../../src/plugins/proxy/ws-relay';
import { rawFrame } from '../../helpers/raw-ws';
import { waitFor } from '../../helpers/wait';

/**
 * The relay alone, over two loopback socket pairs and no app: `browser` ↔ relay ↔ `plugin`.
 * What a browser and a plugin would see is read off the far end of each pair.
 */

const TEXT = 0x1;
const BINARY = 0x2;
const CLOSE = 0x8;
const PING = 0x9;
const PONG = 0xa;
const USER: Principal = { id: 'alice', name: 'Alice', roles: ['user'], iat: 0, exp: undefined };

/**
 * Two connected TCP sockets on 127.0.0.1 (Node has no socketpair). `allowHalfOpen`: neither end
 * ends its writing side by itself when the other's ends, as with a browser and Node's HTTP
 * server (the relay's client socket comes from one).
 */
async function socketPair(allowHalfOpen = false): Promise<[Socket, Socket]> {
  const server = createServer({ allowHalfOpen });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const near = new Socket({ allowHalfOpen });
  near.connect((server.address() as AddressInfo).port, '127.0.0.1');
  const [[far]] = await Promise.all([accepted, once(near, 'connect')]);
  server.close();
  return [near, far];
}

/** Everything one end received, with a wait for a condition on it. */
class Peer {
  public data = Buffer.alloc(0);
  public ended = false;
  public closed = false;

  public constructor(public readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => (this.data = Buffer.concat([this.data, chunk])));
    socket.on('end', () => (this.ended = true));
    socket.on('close', () => (this.closed = true));
    socket.on('error', () => undefined);
  }

  /** Frames as received; a plugin's frames arrive masked, so they are unmasked here. */
  public frames(): { opcode: number; payload: Buffer }[] {
    const out: { opcode: number; payload: Buffer }[] = [];
    let pos = 0;
    while (this.data.length - pos >= 2) {
      const b1 = this.data[pos + 1] as number;
      const masked = (b1 & 0x80) !== 0;
      let len = b1 & 0x7f;
      let at = pos + 2;
      if (len === 126) {
        if (this.data.length - pos < 4) break;
        len = this.data.readUInt16BE(pos + 2);
        at += 2;
      }
      const mask = masked ? this.data.subarray(at, at + 4) : undefined;
      if (masked) at += 4;
      if (this.data.length < at + len) break;
      const payload = Buffer.from(this.data.subarray(at, at + len));
      if (mask !== undefined) for (let i = 0; i < len; i++) payload[i] ^= mask[i % 4] as number;
      out.push({ opcode: (this.data[pos] as number) & 0x0f, payload });
      pos = at + len;
    }
    return out;
  }

  public texts(): string[] {
    return this.frames()
      .filter((f) => f.opcode === TEXT)
      .map((f) => f.payload.toString());
  }

  public closeFrame(): { code: number; reason: string } | undefined {
    const close = this.frames().find((f) => f.opcode === CLOSE);
    if (close === undefined) return undefined;
    return { code: close.payload.readUInt16BE(0), reason: close.payload.subarray(2).toString() };
  }

  public async until<T>(check: () => T | undefined | false, what: string): Promise<T> {
    return waitFor(check, 5000, what);
  }
}

class RecordingHooks implements RelayHooks {
  public lost = 0;
  public closedCount = 0;
  public endings: { code: number; reason: string }[] = [];
  public upstreamLost(): void {
    this.lost += 1;
  }
  public closed(): void {
    this.closedCount += 1;
  }
  public ended(_relay: WsRelay, code: number, reason: string): void {
    this.endings.push({ code, reason });
  }
}

/** Unmasked server frame (what a plugin sends). */
function serverFrame(opcode: number, payload: Buffer | string): Buffer {
  return rawFrame(opcode, Buffer.from(payload), { masked: false });
}

function clientText(text: string): Buffer {
  return rawFrame(TEXT, Buffer.from(text));
}

function clientClose(code: number): Buffer {
  const payload = Buffer.alloc(2);
  payload.writeUInt16BE(code);
  return rawFrame(CLOSE, payload);
}

describe('WsRelay over socket pairs', () => {
  let browser: Peer;
  let plugin: Peer;
  let hooks: RecordingHooks;
  let relay: WsRelay;
  /** The relay's own sockets: towards the browser and towards the plugin. */
  let relayClient: Socket;
  let relayUpstream: Socket;
  const sockets: Socket[] = [];

  async function startRelay(
    maxMessageBytes = 1024,
    clientHead: Buffer = Buffer.alloc(0),
    upstreamHead: Buffer = Buffer.alloc(0),
  ): Promise<void> {
    const [browserSocket, clientSide] = await socketPair(true);
    const [upstreamSide, pluginSocket] = await socketPair();
    relayClient = clientSide;
    relayUpstream = upstreamSide;
    sockets.push(browserSocket, clientSide, upstreamSide, pluginSocket);
    browser = new Peer(browserSocket);
    plugin = new Peer(pluginSocket);
    hooks = new RecordingHooks();
    relay = new WsRelay(
      { plugin: 'echo', generation: 1, user: USER, maxMessageBytes },
      relayClient,
      relayUpstream,
      hooks,
    );
    relay.start(clientHead, upstreamHead);
  }

  afterEach(() => {
    for (const socket of sockets.splice(0)) socket.destroy();
  });

  it('passes client frames to the plugin byte for byte and in order, masks included', async () => {
    await startRelay();
    const frames = ['one', 'two', 'three'].map(clientText);
    for (const frame of frames) browser.socket.write(frame);
    await plugin.until(() => plugin.texts().length === 3, 'three messages at the plugin');
    expect(plugin.data).toEqual(Buffer.concat(frames));
    expect(plugin.texts()).toEqual(['one', 'two', 'three']);
  });

  it('relays the bytes each side sent right after its handshake, before anything later', async () => {
    await startRelay(1024, clientText('early'), serverFrame(TEXT, 'hello'));
    browser.socket.write(clientText('late'));
    await plugin.until(() => plugin.texts().length === 2, 'both client messages');
    await browser.until(() => browser.texts().length === 1, 'the plugin greeting');
    expect(plugin.texts()).toEqual(['early', 'late']);
    expect(browser.texts()).toEqual(['hello']);
  });

  it('closeBoth sends each side a close frame with the code: masked to the plugin only', async () => {
    await startRelay();
    relay.closeBoth(1001, 'server shutting down');
    await browser.until(() => browser.closeFrame(), 'close frame at the browser');
    await plugin.until(() => plugin.closeFrame(), 'close frame at the plugin');
    expect(browser.closeFrame()).toEqual({ code: 1001, reason: 'server shutting down' });
    expect(plugin.closeFrame()).toEqual({ code: 1001, reason: 'server shutting down' });
    expect((browser.data[1] as number) & 0x80).toBe(0);
    expect((plugin.data[1] as number) & 0x80).toBe(0x80);
  });

  it('holds an injected close frame until the frame in flight is complete', async () => {
    await startRelay();
    const frame = serverFrame(TEXT, 'x'.repeat(100));
    plugin.socket.write(frame.subarray(0, 50));
    await browser.until(() => browser.data.length === 50, 'half a frame at the browser');
    relay.closeClient(1012, 'plugin restarting');
    plugin.socket.write(frame.subarray(50));
    await browser.until(() => browser.closeFrame(), 'the close frame');
    expect(browser.frames().map((f) => f.opcode)).toEqual([TEXT, CLOSE]);
    expect(browser.texts()).toEqual(['x'.repeat(100)]);
  });

  it('a client message over the limit → 1009 to both, none of it reaches the plugin', async () => {
    await startRelay(10);
    browser.socket.write(clientText('ok'));
    browser.socket.write(clientText('much too long for the limit'));
    await browser.until(() => browser.closeFrame(), 'close frame at the browser');
    await plugin.until(() => plugin.closeFrame(), 'close frame at the plugin');
    expect(browser.closeFrame()?.code).toBe(1009);
    expect(plugin.closeFrame()?.code).toBe(1009);
    expect(plugin.texts()).toEqual(['ok']);
    expect(hooks.endings).toEqual([{ code: 1009, reason: 'message too big' }]);
  });

  it('an unmasked client frame → 1002 before a byte of it reaches the plugin', async () => {
    await startRelay();
    browser.socket.write(rawFrame(TEXT, Buffer.from('bad'), { masked: false }));
    await browser.until(() => browser.closeFrame(), 'close frame at the browser');
    expect(browser.closeFrame()).toEqual({ code: 1002, reason: 'client frame not masked' });
    await plugin.until(() => plugin.closed || plugin.closeFrame(), 'plugin side ended');
    expect(plugin.texts()).toEqual([]);
  });

  it('a first header byte alone is held until the next byte shows the frame is allowed', async () => {
    await startRelay();
    const write = jest.spyOn(relayUpstream, 'write');
    const frame = clientText('split');
    const arrived = once(relayClient, 'data');
    browser.socket.write(frame.subarray(0, 1));
    await arrived;
    // The relay has read the lone byte (its listener ran before this one) and sent nothing.
    expect(write).not.toHaveBeenCalled();
    browser.socket.write(frame.subarray(1));
    await plugin.until(() => plugin.texts().length === 1, 'the whole message');
    expect(plugin.data).toEqual(frame);
  });

  it('the plugin vanishing without a close frame → upstreamLost, and closed once both are gone', async () => {
    await startRelay();
    plugin.socket.destroy();
    await waitFor(() => hooks.lost === 1, 5000, 'upstreamLost');
    expect(hooks.closedCount).toBe(0);
    relay.closeClient(1011, 'plugin connection lost');
    await browser.until(() => browser.closeFrame(), 'close frame at the browser');
    expect(browser.closeFrame()).toEqual({ code: 1011, reason: 'plugin connection lost' });
    browser.socket.end();
    await waitFor(() => hooks.closedCount === 1, 5000, 'closed hook');
    expect(relay.isClosed).toBe(true);
  });

  it('a clean close handshake from the client ends both sides without upstreamLost', async () => {
    await startRelay();
    browser.socket.write(clientClose(1000));
    await plugin.until(() => plugin.closeFrame(), 'close frame at the plugin');
    plugin.socket.end(serverFrame(CLOSE, Buffer.from([0x03, 0xe8])));
    await browser.until(() => browser.closeFrame() !== undefined && browser.ended, 'the answer');
    browser.socket.end();
    await waitFor(() => hooks.closedCount === 1, 5000, 'closed hook');
    expect(hooks.lost).toBe(0);
    expect(browser.closeFrame()?.code).toBe(1000);
  });

  it('endAfter ends the session with its code and tells the hooks why', async () => {
    await startRelay();
    relay.endAfter(0, 4401, 'token expired');
    await browser.until(() => browser.closeFrame(), 'close frame at the browser');
    expect(browser.closeFrame()).toEqual({ code: 4401, reason: 'token expired' });
    expect(hooks.endings).toEqual([{ code: 4401, reason: 'token expired' }]);
  });

  it('endAfter ends the session at the exact millisecond, also past whole seconds', async () => {
    await startRelay();
    jest.useFakeTimers({ doNotFake: ['setImmediate', 'nextTick', 'queueMicrotask'] });
    try {
      relay.endAfter(2_345, 4401, 'token expired');
      jest.advanceTimersByTime(2_344);
      expect(hooks.endings).toEqual([]);
      jest.advanceTimersByTime(1);
      expect(hooks.endings).toEqual([{ code: 4401, reason: 'token expired' }]);
    } finally {
      jest.useRealTimers();
    }
    await browser.until(() => browser.closeFrame(), 'close frame at the browser');
  });

  it('closeClientFirst: what the browser sent before it heard the close reaches the plugin, then the close', async () => {
    await startRelay();
    relay.closeClientFirst(4401, 'token expired');
    await browser.until(() => browser.closeFrame(), 'close frame at the browser');
    // Typed before the close frame arrived; then the browser answers it (with its own code).
    browser.socket.write(Buffer.concat([clientText('in'), clientText('flight')]));
    browser.socket.write(Buffer.concat([clientText('last'), clientClose(1000)]));
    await plugin.until(() => plugin.closeFrame(), 'close frame at the plugin');
    expect(plugin.texts()).toEqual(['in', 'flight', 'last']);
    // Portico's close, in place of the browser's answer.
    expect(plugin.closeFrame()).toEqual({ code: 4401, reason: 'token expired' });
    expect(plugin.frames().map((f) => f.opcode)).toEqual([TEXT, TEXT, TEXT, CLOSE]);
    plugin.socket.end(serverFrame(CLOSE, Buffer.from([0x0f, 0xa1])));
    browser.socket.end();
    await waitFor(() => hooks.closedCount === 1, 5000, 'closed hook');
    expect(hooks.lost).toBe(0);
    // Nothing from the plugin after Portico's close reaches the browser.
    expect(browser.frames().map((f) => f.opcode)).toEqual([CLOSE]);
  });

  it('closeClientFirst: a browser that never answers is cut off after a second, and the plugin gets the close', async () => {
    await startRelay();
    const started = Date.now();
    relay.closeClientFirst(4401, 'token expired');
    browser.socket.write(clientText('before the cut'));
    await plugin.until(() => plugin.closeFrame(), 'close frame at the plugin');
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(plugin.texts()).toEqual(['before the cut']);
    expect(plugin.closeFrame()).toEqual({ code: 4401, reason: 'token expired' });
    await browser.until(() => browser.ended || browser.closed, 'browser cut off');
    plugin.socket.end();
    await waitFor(() => hooks.closedCount === 1, 5000, 'closed hook');
  });

  it('closeClientFirst: a browser that hangs up without a close frame → the plugin still gets the close', async () => {
    await startRelay();
    relay.closeClientFirst(1001, 'server shutting down');
    await browser.until(() => browser.closeFrame(), 'close frame at the browser');
    browser.socket.end(clientText('and goodbye'));
    await plugin.until(() => plugin.closeFrame(), 'close frame at the plugin');
    expect(plugin.texts()).toEqual(['and goodbye']);
    expect(plugin.closeFrame()).toEqual({ code: 1001, reason: 'server shutting down' });
    plugin.socket.end();
    await waitFor(() => hooks.closedCount === 1, 5000, 'closed hook');
  });

  it('endAfter closes the client first: a message sent as the token expires still reaches the plugin', async () => {
    await startRelay();
    relay.endAfter(0, 4401, 'token expired');
    browser.socket.write(clientText('racing the expiry'));
    await browser.until(() => browser.closeFrame(), 'close frame at the browser');
    browser.socket.write(clientClose(4401));
    await plugin.until(() => plugin.closeFrame(), 'close frame at the plugin');
    expect(plugin.texts()).toEqual(['racing the expiry']);
    expect(plugin.closeFrame()).toEqual({ code: 4401, reason: 'token expired' });
  });

  it('a paused browser fills the relay: every byte still arrives intact, and each large read is freed once written', async () => {
    await startRelay(64 * 1024);
    // The browser side keeps a hash, not the 16 MiB themselves.
    browser.socket.removeAllListeners('data');
    const hash = createHash('sha256');
    let received = 0;
    browser.socket.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      received += chunk.length;
    });
    /** The relay's large reads from the plugin, as its own 'data' listener got them. */
    const large: Buffer[] = [];
    relayUpstream.on('data', (chunk: Buffer) => {
      if (chunk.length >= 16 * 1024) large.push(chunk);
    });
    browser.socket.pause();
    const payload = randomBytes(60_000);
    const frame = serverFrame(BINARY, payload);
    const frames = 280; // ~16 MiB: more than loopback's socket buffers take
    const sent = createHash('sha256');
    for (let i = 0; i < frames; i++) sent.update(frame);
    for (let i = 0; i < frames; i++) plugin.socket.write(frame);
    // Writes to the browser are queued (they refer to read buffers) until the relay pauses.
    await waitFor(() => relayUpstream.isPaused(), 10_000, 'the relay pausing the plugin side');
    expect(relayClient.writableLength).toBeGreaterThan(1024 * 1024);
    browser.socket.resume();
    await waitFor(() => received === frames * frame.length, 20_000, 'every byte at the browser');
    expect(hash.digest('hex')).toBe(sent.digest('hex'));
    expect(large.length).toBeGreaterThan(0);
    // Node 22 and later have ArrayBuffer.prototype.transfer, which the relay frees reads with.
    const canFree =
      typeof (ArrayBuffer.prototype as { transfer?: unknown }).transfer === 'function';
    await waitFor(
      () => large.every((r) => (r.buffer.byteLength === 0) === canFree),
      5000,
      canFree ? 'every large read freed' : 'large reads left to the collector',
    );
    expect(large.filter((r) => r.buffer.byteLength === 0).length).toBe(canFree ? large.length : 0);
  });

  it('keepalive: pings an idle client, drops it after two unanswered pings', async () => {
    await startRelay();
    relay.tick(); // the client was heard at the start: nothing yet
    relay.tick(); // idle for a whole interval: ping
    await browser.until(
      () => browser.frames().some((f) => f.opcode === PING),
      'a ping at the browser',
    );
    relay.tick();
    relay.tick();
    await plugin.until(() => plugin.closeFrame(), 'close frame at the plugin');
    expect(plugin.closeFrame()).toEqual({ code: 1001, reason: 'client stopped answering pings' });
    await browser.until(() => browser.ended || browser.closed, 'browser connection dropped');
  });

  it('keepalive: a client that answers pings stays', async () => {
    await startRelay();
    relay.tick();
    relay.tick();
    await browser.until(
      () => browser.frames().some((f) => f.opcode === PING),
      'a ping at the browser',
    );
    browser.socket.write(rawFrame(PONG, Buffer.from('portico')));
    await plugin.until(
      () => plugin.frames().some((f) => f.opcode === PONG),
      'the pong relayed to the plugin',
    );
    relay.tick();
    relay.tick();
    browser.socket.write(clientText('still here'));
    await plugin.until(() => plugin.texts().includes('still here'), 'a later message');
    expect(plugin.closeFrame()).toBeUndefined();
    expect(browser.closed).toBe(false);
  });
});

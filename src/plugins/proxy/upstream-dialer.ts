import { connect, Socket } from 'node:net';

import type { Provider } from '@nestjs/common';

import { PluginException, PluginExceptionCode } from '../shared/plugin.exception';
import { parseResponseHead, UpstreamAnswer } from './ws-handshake';

/** A plugin's answer to the forwarded WebSocket handshake, with the connection it came on. */
export interface UpstreamHandshake extends UpstreamAnswer {
  readonly socket: Socket;
  /** Bytes the plugin sent after its response head (already frames). */
  readonly rest: Buffer;
}

export interface DialOptions {
  readonly port: number;
  /** The whole request head to send (ws-handshake.ts `upstreamRequestHead`). */
  readonly head: string;
  readonly timeoutMs: number;
}

/**
 * How the WebSocket proxy reaches a plugin: the one network side effect of a handshake, as a
 * provider (UPSTREAM_DIALER) a test can replace.
 */
export interface UpstreamDialer {
  dial(options: DialOptions): Promise<UpstreamHandshake>;
}

export const UPSTREAM_DIALER = Symbol('UPSTREAM_DIALER');

export const upstreamDialerProvider: Provider = {
  provide: UPSTREAM_DIALER,
  useValue: { dial: dialUpstream } satisfies UpstreamDialer,
};

const MAX_HEAD_BYTES = 16 * 1024;
const HEAD_END = Buffer.from('\r\n\r\n');

/**
 * Opens a TCP connection to the plugin on 127.0.0.1, sends the upgrade request head,
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
      const parsed = parseResponseHead(received.subarray(0, end).toString('latin1'));
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
    socket.on('connect', () => socket.write(options.head));
  });
}

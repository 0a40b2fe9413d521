import { get as httpGet } from 'node:http';
import type { IncomingMessage } from 'node:http';
import { get as httpsGet } from 'node:https';

export interface JwksFetchOptions {
  /** Deadline for the whole exchange, from connecting to the last byte. */
  readonly timeoutMs: number;
  /** Largest body accepted. */
  readonly maxBytes: number;
  /** Aborts the fetch (on shutdown). */
  readonly signal: AbortSignal;
}

/** Fetches a JWKS document and returns it parsed, unvalidated. */
export type JwksFetcher = (url: URL, options: JwksFetchOptions) => Promise<unknown>;

/**
 * GET over node:http(s). Redirects are not followed and anything but 200 is a failure; the
 * deadline covers a server that accepts and then trickles or stalls, not only connecting.
 */
export const fetchJwks: JwksFetcher = (url, { timeoutMs, maxBytes, signal }) =>
  new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(new Error('fetch aborted'));
      return;
    }
    const get = url.protocol === 'https:' ? httpsGet : httpGet;
    // No agent: one short-lived connection per fetch, none kept open to hold the process.
    const req = get(url, {
      agent: false,
      headers: { accept: 'application/jwk-set+json, application/json' },
    });
    let settled = false;
    const finish = (err: Error | undefined, body?: unknown): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      if (err === undefined) {
        resolve(body);
      } else {
        req.destroy();
        reject(err);
      }
    };
    const onAbort = (): void => finish(new Error('fetch aborted'));
    const timer = setTimeout(
      () => finish(new Error(`no complete answer within ${timeoutMs} ms`)),
      timeoutMs,
    );
    signal.addEventListener('abort', onAbort, { once: true });
    req.on('error', (err) => finish(err));
    req.on('response', (res: IncomingMessage) => {
      if (res.statusCode !== 200) {
        finish(new Error(`answered HTTP ${res.statusCode ?? 0}`));
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > maxBytes) finish(new Error(`key set larger than ${maxBytes} bytes`));
        else chunks.push(chunk);
      });
      res.on('error', (err) => finish(err));
      res.on('end', () => {
        let body: unknown;
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          finish(new Error('key set is not JSON'));
          return;
        }
        finish(undefined, body);
      });
    });
  });

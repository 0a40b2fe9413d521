import { request } from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';

export interface HttpResult {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** The body parsed as JSON (undefined if it is not JSON). */
  json: unknown;
}

/** A raw HTTP request (no URL normalisation, unlike fetch), body collected. */
export function http(
  baseUrl: string,
  method: string,
  path: string,
  options: {
    token?: string;
    headers?: Record<string, string>;
    body?: Buffer | string | object;
  } = {},
): Promise<HttpResult> {
  const url = new URL(baseUrl);
  const headers: Record<string, string> = { ...options.headers };
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  let body: Buffer | undefined;
  if (options.body !== undefined) {
    if (Buffer.isBuffer(options.body) || typeof options.body === 'string') {
      body = Buffer.from(options.body);
    } else {
      body = Buffer.from(JSON.stringify(options.body));
      headers['content-type'] ??= 'application/json';
    }
    headers['content-length'] = String(body.length);
  }
  return new Promise((resolve, reject) => {
    const req = request(
      { host: url.hostname, port: url.port, method, path, headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const buf = Buffer.concat(chunks);
          let json: unknown;
          try {
            json = JSON.parse(buf.toString('utf8'));
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: buf, json });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

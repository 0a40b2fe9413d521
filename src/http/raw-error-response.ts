import { STATUS_CODES } from 'node:http';

/**
 * A complete HTTP/1.1 error answer with Nest's JSON error body, for a socket no Express response
 * exists for (a refused upgrade, a CONNECT). The connection closes after it: `Connection: close`
 * unless `headers` gives its own, then `headers` in their order.
 */
export function rawErrorResponse(
  status: number,
  message: string,
  headers: Readonly<Record<string, string>> = {},
): string {
  const error = STATUS_CODES[status] ?? 'Error';
  const body = JSON.stringify({ statusCode: status, error, message });
  const fields: Record<string, string> = {
    Connection: 'close',
    ...headers,
    'Content-Type': 'application/json',
    'Content-Length': String(Buffer.byteLength(body)),
  };
  let head = `HTTP/1.1 ${status} ${error}\r\n`;
  for (const [name, value] of Object.entries(fields)) head += `${name}: ${value}\r\n`;
  return `${head}\r\n${body}`;
}

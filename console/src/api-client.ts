import { readToken } from './token-store';
import type { LogLine, Me, PluginView, Project } from './types';

/** An answer of the API that was not a success, with the message it gave (plain words). */
export class ApiError extends Error {
  public constructor(
    public readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** The request never got an answer (network down, server gone). */
export class NetworkError extends Error {
  public constructor(cause: unknown) {
    super(`Portico could not be reached${cause instanceof Error ? ` (${cause.message})` : ''}.`);
    this.name = 'NetworkError';
  }
}

/** A sentence for an error from any of the console's requests. */
export function describeError(error: unknown): string {
  if (error instanceof ApiError) return `${error.message} (${error.status})`;
  if (error instanceof Error) return error.message;
  return String(error);
}

/**
 * The management API with the stored token as `Authorization: Bearer`. A 401 on any call means
 * the session is over: `onUnauthorized` sends the user back to sign-in.
 */
export class ApiClient {
  public constructor(private readonly onUnauthorized: () => void) {}

  /** Checks a token before it is stored (a 401 here is an answer, not an expired session). */
  public static async validate(token: string): Promise<Me> {
    return (await send('GET', '/api/me', token)) as Me;
  }

  public me(): Promise<Me> {
    return this.call<Me>('GET', '/api/me');
  }

  public projects(): Promise<Project[]> {
    return this.call<Project[]>('GET', '/api/projects');
  }

  public plugins(): Promise<PluginView[]> {
    return this.call<PluginView[]>('GET', '/api/plugins');
  }

  public plugin(name: string): Promise<PluginView> {
    return this.call<PluginView>('GET', pluginPath(name));
  }

  public setEnabled(name: string, enabled: boolean): Promise<PluginView> {
    return this.call<PluginView>('PUT', `${pluginPath(name)}/enable`, { enabled });
  }

  public restart(name: string): Promise<PluginView> {
    return this.call<PluginView>('POST', `${pluginPath(name)}/restart`);
  }

  public setAccess(name: string, roles: readonly string[]): Promise<PluginView> {
    return this.call<PluginView>('PUT', `${pluginPath(name)}/access`, { roles });
  }

  public async logs(name: string, tail: number): Promise<LogLine[]> {
    const answer = await this.call<{ lines: { time: number; stream: string; line: string }[] }>(
      'GET',
      `${pluginPath(name)}/logs?tail=${tail}`,
    );
    return answer.lines.map((l) => ({ time: l.time, stream: l.stream, line: l.line }));
  }

  public async setSecret(name: string, key: string, value: string): Promise<void> {
    await this.call('PUT', `${pluginPath(name)}/secrets/${encodeURIComponent(key)}`, { value });
  }

  public async deleteSecret(name: string, key: string): Promise<void> {
    await this.call('DELETE', `${pluginPath(name)}/secrets/${encodeURIComponent(key)}`);
  }

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    try {
      return (await send(method, path, readToken(), body)) as T;
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) this.onUnauthorized();
      throw error;
    }
  }
}

export function pluginPath(name: string): string {
  return `/api/plugins/${encodeURIComponent(name)}`;
}

async function send(
  method: string,
  path: string,
  token: string | null,
  body?: unknown,
): Promise<unknown> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
    });
  } catch (error) {
    throw new NetworkError(error);
  }
  const text = await response.text();
  if (!response.ok) throw new ApiError(response.status, errorMessage(text, response));
  return text === '' ? undefined : (JSON.parse(text) as unknown);
}

/** The `message` of Portico's JSON error body (a list for validation errors), else the status. */
function errorMessage(text: string, response: Response): string {
  try {
    const body = JSON.parse(text) as { message?: unknown; error?: unknown };
    if (Array.isArray(body.message)) return body.message.map(String).join('; ');
    if (typeof body.message === 'string' && body.message !== '') return body.message;
    if (typeof body.error === 'string' && body.error !== '') return body.error;
  } catch {
    // Not JSON (a proxy's error page): fall back to the status line.
  }
  return response.statusText || `HTTP ${response.status}`;
}

import { ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { suiteHasEnded, track } from './leftovers';

/** A client registered with the test provider (OpenID Connect dynamic client metadata). */
export interface OidcTestClient {
  client_id: string;
  client_secret?: string;
  redirect_uris: string[];
  post_logout_redirect_uris?: string[];
  grant_types?: string[];
  response_types?: string[];
  token_endpoint_auth_method?: string;
}

/** A person who can sign in (with any password) under their login. */
export interface OidcTestAccount {
  name?: string;
  email?: string;
  groups?: string[];
}

export interface OidcProviderOptions {
  clients: OidcTestClient[];
  accounts: Record<string, OidcTestAccount>;
  /** Lifetimes in seconds (IdToken, AccessToken, RefreshToken, Session, Grant). */
  ttl?: Partial<Record<'IdToken' | 'AccessToken' | 'RefreshToken' | 'Session' | 'Grant', number>>;
  rotateRefreshToken?: boolean;
}

export interface OidcProvider {
  /** `http://127.0.0.1:<port>`; discovery at `<issuer>/.well-known/openid-configuration`. */
  readonly issuer: string;
  /** What the provider printed on stderr (warnings, errors), for a failing test to show. */
  output(): string;
  stop(): Promise<void>;
}

const SCRIPT = join(__dirname, 'oidc', 'provider.mjs');
const START_TIMEOUT_MS = 20_000;

/**
 * Starts a real OpenID Provider (npm `oidc-provider`, ES modules only, so in a process of its
 * own) on a free 127.0.0.1 port. Stopped by `stop()`, or after the suite if a test did not get
 * there.
 */
export async function startOidcProvider(options: OidcProviderOptions): Promise<OidcProvider> {
  if (suiteHasEnded()) throw new Error('the suite has ended: no new OpenID provider');
  const child = spawn(process.execPath, [SCRIPT], {
    env: { PATH: process.env.PATH ?? '', OIDC_TEST_CONFIG: JSON.stringify(options) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-20_000);
  });
  const stop = (): Promise<void> => stopChild(child);
  const untrack = track(stop);
  try {
    const issuer = await readyIssuer(child, () => stderr);
    return {
      issuer,
      output: () => stderr,
      stop: async () => {
        await stop();
        untrack();
      },
    };
  } catch (err) {
    await stop();
    untrack();
    throw err;
  }
}

function readyIssuer(child: ChildProcess, stderr: () => string): Promise<string> {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    const timer = setTimeout(() => {
      reject(new Error(`the OpenID provider did not start:\n${stderr()}`));
    }, START_TIMEOUT_MS);
    lines.once('line', (line) => {
      clearTimeout(timer);
      try {
        const ready = JSON.parse(line) as { ready?: boolean; issuer?: string };
        if (ready.ready === true && typeof ready.issuer === 'string') resolve(ready.issuer);
        else reject(new Error(`unexpected first line: ${line}`));
      } catch {
        reject(new Error(`unexpected first line: ${line}\n${stderr()}`));
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the OpenID provider exited (${code}) before it was ready:\n${stderr()}`));
    });
  });
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), 5_000);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/**
 * Signs `login` in through the provider's own pages the way a browser would (cookies kept,
 * redirects followed by hand, the login form and then the consent form posted), starting at
 * `authorizationUrl`; returns the URL the provider finally sends the browser to (the client's
 * redirect URI with `code` and `state`, or with `error`). Stops at the first URL outside the
 * provider.
 */
export async function signInThroughProvider(
  provider: OidcProvider,
  authorizationUrl: string,
  login: string,
): Promise<string> {
  const cookies = new Map<string, string>();
  const keep = (res: Response): void => {
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const at = pair.indexOf('=');
      if (at > 0) cookies.set(pair.slice(0, at).trim(), pair.slice(at + 1));
    }
  };
  const cookieHeader = (): string => [...cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  let url = authorizationUrl;
  let body: URLSearchParams | undefined;
  for (let step = 0; step < 20; step++) {
    if (!url.startsWith(provider.issuer)) return url;
    const res = await fetch(url, {
      method: body === undefined ? 'GET' : 'POST',
      redirect: 'manual',
      headers: { cookie: cookieHeader() },
      ...(body === undefined ? {} : { body }),
    });
    keep(res);
    body = undefined;
    const location = res.headers.get('location');
    if (location !== null) {
      url = new URL(location, url).toString();
      await res.arrayBuffer();
      continue;
    }
    const html = await res.text();
    const action = /<form[^>]*action="([^"]+)"/.exec(html)?.[1];
    const prompt = /name="prompt" value="([^"]+)"/.exec(html)?.[1];
    if (res.status !== 200 || action === undefined || prompt === undefined)
      throw new Error(`the provider answered ${res.status} at ${url}: ${html.slice(0, 500)}`);
    url = new URL(action.replace(/&amp;/g, '&'), url).toString();
    body = new URLSearchParams({ prompt, login, password: 'any password' });
  }
  throw new Error('too many steps signing in through the provider');
}

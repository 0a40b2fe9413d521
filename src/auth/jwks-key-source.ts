import type { KeyObject } from 'node:crypto';

import { Logger } from '@nestjs/common';
import { createLocalJWKSet, errors } from 'jose';
import type { JSONWebKeySet, JWSHeaderParameters } from 'jose';

import { AuthException, AuthExceptionCode } from './auth.exception';
import { fetchJwks } from './jwks-fetcher';
import type { JwksFetcher } from './jwks-fetcher';
import type { JwtAlgorithm, KeySource } from './key-source';

/** Injection token for overriding JwksOptions (tests); production uses JWKS_DEFAULTS. */
export const JWKS_OPTIONS = Symbol('JWKS_OPTIONS');

export interface JwksOptions {
  /** Deadline for one fetch; tokens waiting on it then get 401. */
  readonly fetchTimeoutMs: number;
  /** Least time from one fetch to the next: bounds the refetches a flood of unknown `kid`s causes. */
  readonly refetchCooldownMs: number;
  /** Least time from a failed fetch to the next, so a down endpoint is not asked per request. */
  readonly retryAfterFailureMs: number;
  /** Keys older than this are fetched again before use; kept if that fetch fails. */
  readonly maxAgeMs: number;
  /** Largest key set accepted. */
  readonly maxBytes: number;
  readonly now: () => number;
  readonly fetch: JwksFetcher;
}

export const JWKS_DEFAULTS: JwksOptions = {
  fetchTimeoutMs: 5_000,
  refetchCooldownMs: 30_000,
  retryAfterFailureMs: 5_000,
  maxAgeMs: 10 * 60_000,
  maxBytes: 256 * 1024,
  now: () => Date.now(),
  fetch: fetchJwks,
};

type KeySet = ReturnType<typeof createLocalJWKSet<KeyObject>>;

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/**
 * RS256/ES256 keys from JWT_JWKS_URL. Keys are fetched on first use and cached; a `kid` not in
 * the cache triggers one refetch, at most once per cooldown, and concurrent callers share a
 * fetch. A failed fetch never throws past here: tokens that need keys we do not have get 401,
 * and the failure is logged once until a fetch succeeds again.
 */
export class JwksKeySource implements KeySource {
  public readonly algorithms: readonly JwtAlgorithm[] = ['RS256', 'ES256'];
  private readonly logger = new Logger(JwksKeySource.name);
  private readonly options: JwksOptions;
  /** What logs show of the URL: no credentials, no query. */
  private readonly shownUrl: string;
  private readonly abort = new AbortController();
  private keys: KeySet | undefined;
  private loadedAt = 0;
  private nextFetchAt = 0;
  private pending: Promise<void> | undefined;
  private failures = 0;
  private closed = false;

  public constructor(
    private readonly url: URL,
    options: Partial<JwksOptions> = {},
  ) {
    this.options = { ...JWKS_DEFAULTS, ...options };
    this.shownUrl = `${url.origin}${url.pathname}`;
    if (url.protocol === 'http:' && !LOOPBACK_HOSTS.has(url.hostname)) {
      this.logger.warn({
        event: 'jwks_insecure_url',
        url: this.shownUrl,
        message: 'JWT_JWKS_URL uses plain http: anyone on the path can swap the signing keys',
      });
    }
  }

  public async keyFor(header: JWSHeaderParameters): Promise<KeyObject> {
    if (!this.algorithms.some((alg) => alg === header.alg)) throw invalidToken();
    if (this.keys === undefined || this.isStale()) await this.refresh();
    const cached = this.keys;
    if (cached === undefined) {
      throw new AuthException(AuthExceptionCode.KEYS_UNAVAILABLE, 'signing keys unavailable');
    }
    const key = await this.select(cached, header);
    if (key !== undefined) return key;
    // An unknown `kid` may be a key the issuer has just rotated in.
    await this.refresh();
    const fresh = this.keys;
    const retried =
      fresh === undefined || fresh === cached ? undefined : await this.select(fresh, header);
    if (retried === undefined) throw invalidToken();
    return retried;
  }

  /** Fetches the keys ahead of the first token; failures are only logged. */
  public warmUp(): Promise<void> {
    return this.keys === undefined ? this.refresh() : Promise.resolve();
  }

  /** Aborts a fetch in flight and starts no more. */
  public close(): void {
    this.closed = true;
    this.abort.abort();
  }

  /** The key the set holds for this header, `undefined` when none matches. */
  private async select(keys: KeySet, header: JWSHeaderParameters): Promise<KeyObject | undefined> {
    try {
      return await keys(header);
    } catch (err) {
      if (err instanceof errors.JWKSNoMatchingKey) return undefined;
      // Several keys fit a token without `kid`, or the matching JWK does not import.
      this.logger.debug({
        event: 'jwks_key_unusable',
        reason: reasonOf(err),
      });
      throw invalidToken();
    }
  }

  private isStale(): boolean {
    return this.options.now() - this.loadedAt >= this.options.maxAgeMs;
  }

  /** Joins the fetch in flight, or starts one unless still cooling down; never rejects. */
  private refresh(): Promise<void> {
    if (this.pending !== undefined) return this.pending;
    if (this.closed || this.options.now() < this.nextFetchAt) return Promise.resolve();
    this.pending = this.load().finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  private async load(): Promise<void> {
    const { fetchTimeoutMs, maxBytes, refetchCooldownMs, retryAfterFailureMs, now } = this.options;
    this.nextFetchAt = now() + refetchCooldownMs;
    let keySet: JSONWebKeySet;
    try {
      const body = await this.options.fetch(this.url, {
        timeoutMs: fetchTimeoutMs,
        maxBytes,
        signal: this.abort.signal,
      });
      if (!isKeySet(body)) throw new Error('answer is not a JWK set ({"keys": [...]})');
      keySet = body;
      this.keys = createLocalJWKSet<KeyObject>(keySet);
    } catch (err) {
      if (this.closed) return;
      this.nextFetchAt = now() + retryAfterFailureMs;
      if (this.failures++ === 0) {
        this.logger.warn({
          event: 'jwks_fetch_failed',
          url: this.shownUrl,
          reason: reasonOf(err),
          cachedKeys: this.keys !== undefined,
        });
      }
      return;
    }
    this.loadedAt = now();
    if (this.failures > 0) {
      this.logger.log({
        event: 'jwks_fetch_recovered',
        url: this.shownUrl,
        failures: this.failures,
      });
    }
    this.failures = 0;
    this.logger.debug({ event: 'jwks_loaded', url: this.shownUrl, keys: keySet.keys.length });
  }
}

function isKeySet(body: unknown): body is JSONWebKeySet {
  if (typeof body !== 'object' || body === null || !('keys' in body)) return false;
  const { keys } = body;
  return Array.isArray(keys) && keys.every((k) => typeof k === 'object' && k !== null);
}

/** A failure's message for the log; network errors may come from another realm, or be empty. */
function reasonOf(err: unknown): string {
  if (typeof err !== 'object' || err === null) return 'unknown';
  if ('message' in err && typeof err.message === 'string' && err.message !== '') return err.message;
  if ('code' in err && typeof err.code === 'string') return err.code;
  return 'unknown';
}

function invalidToken(): AuthException {
  return new AuthException(AuthExceptionCode.INVALID_TOKEN, 'invalid token');
}

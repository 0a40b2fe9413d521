import type { Principal } from './principal';

interface Entry {
  readonly principal: Principal;
  /** Epoch ms after which the entry must not be used. */
  readonly until: number;
}

export interface VerifiedTokenCacheOptions {
  /** Most tokens kept; the least recently used goes first. */
  readonly maxEntries: number;
  /** Longest an entry is trusted, whatever the token's `exp` says (ms). */
  readonly maxAgeMs: number;
  /** Longer tokens are never cached (bounds the cache's memory). */
  readonly maxTokenLength: number;
}

export const VERIFIED_TOKEN_CACHE_DEFAULTS: VerifiedTokenCacheOptions = {
  maxEntries: 1024,
  maxAgeMs: 60_000,
  maxTokenLength: 4096,
};

/**
 * Tokens that passed full verification, by their exact text, so that a client opening many
 * WebSockets with the same token pays for the signature check once (it was about a sixth of a
 * handshake's CPU). An entry is used only until the token expires (`exp` plus the same clock
 * tolerance verification allows) and never longer than `maxAgeMs`, so a key removed from the
 * JWKS stops being honoured within that time. Rejected tokens are never cached. Bounded LRU.
 */
export class VerifiedTokenCache {
  private readonly entries = new Map<string, Entry>();

  public constructor(
    private readonly options: VerifiedTokenCacheOptions = VERIFIED_TOKEN_CACHE_DEFAULTS,
  ) {}

  public get size(): number {
    return this.entries.size;
  }

  /** The principal of a token verified earlier and still usable at `now`, else undefined. */
  public get(token: string, now: number): Principal | undefined {
    const entry = this.entries.get(token);
    if (entry === undefined) return undefined;
    this.entries.delete(token);
    if (now >= entry.until) return undefined;
    this.entries.set(token, entry); // most recently used last
    return entry.principal;
  }

  /**
   * Remembers a verified token. `expiresAt` is the epoch ms after which verification would
   * reject it (undefined when the token has no `exp`).
   */
  public set(token: string, principal: Principal, now: number, expiresAt?: number): void {
    if (token.length > this.options.maxTokenLength || this.options.maxEntries <= 0) return;
    const until = Math.min(now + this.options.maxAgeMs, expiresAt ?? Number.POSITIVE_INFINITY);
    if (until <= now) return;
    this.entries.delete(token);
    // Shared by every later hit: nobody may change it.
    Object.freeze(principal.roles);
    this.entries.set(token, { principal: Object.freeze(principal), until });
    while (this.entries.size > this.options.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
  }
}

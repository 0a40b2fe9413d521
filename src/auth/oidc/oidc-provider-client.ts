import { Logger } from '@nestjs/common';
import type { BaseClient, IdTokenClaims, TokenSet } from 'openid-client';

import { CLOCK_TOLERANCE_SECONDS } from '../token-verifier.service';

/** How long one request to the provider may take (discovery, token, userinfo, revocation). */
const PROVIDER_TIMEOUT_MS = 5_000;
/** After a failed discovery, how long before the next request tries again. */
const DISCOVERY_RETRY_MS = 5_000;

/** What the provider said, classified for the answer the browser gets. */
export type ProviderFailure =
  /** The provider answered with an OAuth error (`invalid_grant`: replayed, expired or revoked). */
  | { readonly kind: 'refused'; readonly error: string; readonly description?: string }
  /** What the provider sent failed a check (state, nonce, signature, issuer, audience, expiry). */
  | { readonly kind: 'invalid'; readonly reason: string }
  /** The provider could not be reached, or answered something that is not OAuth. */
  | { readonly kind: 'unreachable'; readonly reason: string };

/** A provider failure as an error, so it can be thrown through a transaction. */
export class ProviderError extends Error {
  public constructor(public readonly failure: ProviderFailure) {
    super(
      failure.kind === 'refused'
        ? `the identity provider refused: ${failure.error}`
        : failure.kind === 'invalid'
          ? `the identity provider's answer failed a check: ${failure.reason}`
          : `the identity provider could not be reached: ${failure.reason}`,
    );
    this.name = 'ProviderError';
  }
}

/** Settings of the client registered at the provider. */
export interface ProviderClientSettings {
  readonly issuer: string;
  readonly clientId: string;
  readonly clientSecret?: string;
}

/**
 * The OpenID provider as openid-client 5 (certified, CommonJS) sees it: discovery on first use
 * (retried after a failure, so a provider that was down at startup is picked up), one client.
 * Every call rejects with a ProviderError.
 */
export class OidcProviderClient {
  private readonly logger = new Logger('SingleSignOn');
  private client: Promise<BaseClient> | undefined;
  private failedAt = 0;

  public constructor(private readonly settings: ProviderClientSettings) {}

  /** Discovers the provider now (at startup), logging the outcome; never rejects. */
  public async warmUp(): Promise<void> {
    await this.get().catch(() => undefined);
  }

  public async authorizationUrl(params: {
    redirectUri: string;
    scope: string;
    state: string;
    nonce: string;
    codeChallenge: string;
  }): Promise<string> {
    const client = await this.get();
    return client.authorizationUrl({
      response_type: 'code',
      redirect_uri: params.redirectUri,
      scope: params.scope,
      state: params.state,
      nonce: params.nonce,
      code_challenge: params.codeChallenge,
      code_challenge_method: 'S256',
    });
  }

  /**
   * Exchanges the code: checks state, then the ID token's signature (provider JWKS), issuer,
   * audience, expiry and nonce, with the PKCE verifier.
   */
  public async callback(
    redirectUri: string,
    params: Record<string, string>,
    checks: { state: string; nonce: string; codeVerifier: string },
  ): Promise<TokenSet> {
    const client = await this.get();
    return call(() =>
      client.callback(redirectUri, params, {
        state: checks.state,
        nonce: checks.nonce,
        code_verifier: checks.codeVerifier,
        response_type: 'code',
      }),
    );
  }

  public async refresh(refreshToken: string): Promise<TokenSet> {
    const client = await this.get();
    return call(() => client.refresh(refreshToken));
  }

  /** The userinfo claims for an access token. */
  public async userinfo(accessToken: string): Promise<Record<string, unknown>> {
    const client = await this.get();
    if (client.issuer.metadata.userinfo_endpoint === undefined) return {};
    return call(() => client.userinfo<Record<string, unknown>>(accessToken));
  }

  /** Revokes a refresh token where the provider has a revocation endpoint. */
  public async revoke(refreshToken: string): Promise<void> {
    const client = await this.get();
    if (client.issuer.metadata.revocation_endpoint === undefined) return;
    await call(() => client.revoke(refreshToken, 'refresh_token'));
  }

  /** The provider's RP-initiated logout URL, or undefined when it has none. */
  public async endSessionUrl(params: {
    idTokenHint?: string;
    postLogoutRedirectUri: string;
  }): Promise<string | undefined> {
    const client = await this.get();
    if (client.issuer.metadata.end_session_endpoint === undefined) return undefined;
    return client.endSessionUrl({
      ...(params.idTokenHint !== undefined ? { id_token_hint: params.idTokenHint } : {}),
      post_logout_redirect_uri: params.postLogoutRedirectUri,
      client_id: this.settings.clientId,
    });
  }

  private get(): Promise<BaseClient> {
    if (this.client === undefined && Date.now() - this.failedAt < DISCOVERY_RETRY_MS)
      return Promise.reject(
        new ProviderError({ kind: 'unreachable', reason: 'discovery failed moments ago' }),
      );
    this.client ??= this.discover();
    return this.client;
  }

  private async discover(): Promise<BaseClient> {
    try {
      // Loaded on first use (about 14 MiB): a Portico without single sign-on never pays for it.
      const { custom, Issuer } = await openidClient();
      const issuer = await Issuer.discover(this.settings.issuer);
      issuer[custom.http_options] = () => ({ timeout: PROVIDER_TIMEOUT_MS });
      const client = new issuer.Client({
        client_id: this.settings.clientId,
        ...(this.settings.clientSecret !== undefined
          ? { client_secret: this.settings.clientSecret }
          : { token_endpoint_auth_method: 'none' }),
        response_types: ['code'],
      });
      client[custom.http_options] = () => ({ timeout: PROVIDER_TIMEOUT_MS });
      client[custom.clock_tolerance] = CLOCK_TOLERANCE_SECONDS;
      this.logger.log({
        event: 'oidc_provider_ready',
        issuer: issuer.metadata.issuer,
        endSession: issuer.metadata.end_session_endpoint !== undefined,
        revocation: issuer.metadata.revocation_endpoint !== undefined,
      });
      return client;
    } catch (err) {
      this.client = undefined;
      this.failedAt = Date.now();
      const reason = err instanceof Error ? err.message : String(err);
      this.logger.warn({ event: 'oidc_discovery_failed', issuer: this.settings.issuer, reason });
      throw new ProviderError({ kind: 'unreachable', reason: `discovery failed: ${reason}` });
    }
  }
}

type OpenidClient = typeof import('openid-client');
let loaded: OpenidClient | undefined;

/** openid-client, loaded once. */
async function openidClient(): Promise<OpenidClient> {
  loaded ??= await import('openid-client');
  return loaded;
}

/** Runs a call to the provider, turning whatever it throws into a ProviderError. */
async function call<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    throw new ProviderError(classify(err, (await openidClient()).errors));
  }
}

function classify(err: unknown, errors: OpenidClient['errors']): ProviderFailure {
  if (err instanceof errors.OPError)
    return {
      kind: 'refused',
      error: err.error ?? 'error',
      ...(err.error_description !== undefined ? { description: err.error_description } : {}),
    };
  if (err instanceof errors.RPError) {
    // An unexpected HTTP status or body is the provider misbehaving, not a check that failed.
    if (/expected 200 OK|unexpected response|expected application\/json/i.test(err.message))
      return { kind: 'unreachable', reason: err.message };
    // "nonce mismatch, expected …, got: …": the values stay out of pages and logs.
    return { kind: 'invalid', reason: err.message.split(',')[0] ?? 'invalid answer' };
  }
  return { kind: 'unreachable', reason: err instanceof Error ? err.message : String(err) };
}

export type { IdTokenClaims, TokenSet };

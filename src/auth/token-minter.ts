import { sign } from 'jsonwebtoken';

export interface MintOptions {
  sub: string;
  name?: string;
  roles?: string[];
  /** Lifetime in seconds (default 3600). */
  expiresInSeconds?: number;
  issuer?: string;
  audience?: string;
  rolesClaim?: string;
}

/** Signs an HS256 user token; used by `npm run token` and by tests. */
export function mintToken(secret: string, options: MintOptions): string {
  const payload: Record<string, unknown> = {
    [options.rolesClaim ?? 'roles']: options.roles ?? [],
  };
  if (options.name !== undefined) payload.name = options.name;
  return sign(payload, secret, {
    algorithm: 'HS256',
    subject: options.sub,
    expiresIn: options.expiresInSeconds ?? 3600,
    ...(options.issuer !== undefined ? { issuer: options.issuer } : {}),
    ...(options.audience !== undefined ? { audience: options.audience } : {}),
  });
}

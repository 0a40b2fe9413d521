import { createSecretKey } from 'node:crypto';
import type { KeyObject } from 'node:crypto';

import type { JwtAlgorithm, KeySource } from './key-source';

/** HS256 with the shared JWT_SECRET. */
export class HmacKeySource implements KeySource {
  public readonly algorithms: readonly JwtAlgorithm[] = ['HS256'];
  private readonly key: KeyObject;

  public constructor(secret: string) {
    // A secret KeyObject, so keyFitsAlgorithm can tell it from a public key by its type.
    this.key = createSecretKey(Buffer.from(secret, 'utf8'));
  }

  public keyFor(): KeyObject {
    return this.key;
  }
}

import type { IncomingMessage } from 'node:http';

import { Strategy } from 'passport-strategy';

import { AuthException } from './auth.exception';
import type { Principal } from './principal';

/** How a verify function answers: the user, or why there is none. */
export type RequestVerifyDone = (err: unknown, user?: Principal | null) => void;

/** Judges a request; `options` are those given to `passport.authenticate()` for this request. */
export type RequestVerify<TOptions extends object> = (
  req: IncomingMessage,
  options: Partial<TOptions>,
  done: RequestVerifyDone,
) => void;

/**
 * The least passport strategy: it hands the raw request and the `passport.authenticate()`
 * options to a verify function and turns the answer into passport's outcomes. An AuthException
 * is the caller's fault (`fail`, 401, the exception as the challenge); any other error is ours
 * (`error`). Unlike passport-custom, the verify function sees the options, which is how a guard
 * tells the strategy registered under a shared name which app's keys to use.
 */
export class RequestStrategy<TOptions extends object> extends Strategy {
  public constructor(private readonly verifyRequest: RequestVerify<TOptions>) {
    super();
  }

  public override authenticate(req: IncomingMessage, options?: Partial<TOptions>): void {
    // `this` is passport's per-request copy of the strategy, carrying success/fail/error.
    this.verifyRequest(req, options ?? {}, (err, user) => {
      if (err instanceof AuthException) this.fail(err, 401);
      else if (err !== null && err !== undefined)
        this.error(err instanceof Error ? err : new Error(String(err)));
      else if (user === null || user === undefined) this.fail(401);
      else this.success(user);
    });
  }
}

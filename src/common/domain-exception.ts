/**
 * An error a room of the app throws on purpose, carrying its own HTTP answer. The global filter
 * (http-exception.filter.ts) sends it without knowing which room it came from, so `common/`
 * depends on no room.
 */
export abstract class DomainException extends Error {
  /** The HTTP status this error is answered with. */
  public abstract readonly httpStatus: number;

  /** Headers that go with the error answer, e.g. `Retry-After`. */
  public get httpHeaders(): Readonly<Record<string, string>> {
    return {};
  }
}

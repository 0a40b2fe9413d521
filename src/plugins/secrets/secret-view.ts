import type { SecretSource } from './secret-resolver';

/** One declared secret as the API lists it: whether and where it is set, never its value. */
export interface SecretView {
  readonly key: string;
  readonly required: boolean;
  readonly set: boolean;
  /** Where the value comes from once set: `file` (mounted) or `store`. */
  readonly source: SecretSource | null;
}

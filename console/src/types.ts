/** Shapes the Portico API sends (docs/plugin-contract.md §3), as far as the console reads them. */

/** docs/plugin-contract.md §2; `string` keeps a status a newer server adds displayable. */
export type PluginStatus =
  | 'disabled'
  | 'stopped'
  | 'starting'
  | 'running'
  | 'stopping'
  | 'restarting'
  | 'crashed'
  | 'failed'
  | 'invalid'
  | (string & {});

export interface SecretView {
  readonly key: string;
  readonly required: boolean;
  readonly set: boolean;
  readonly source: 'file' | 'store' | null;
}

export interface PluginView {
  readonly name: string;
  readonly displayName?: string;
  readonly version?: string;
  readonly description?: string;
  readonly icon?: string;
  readonly entry?: string;
  readonly hasServer: boolean;
  readonly enabled: boolean;
  readonly status: PluginStatus;
  readonly restarts: number;
  readonly lastError?: string;
  readonly invalidReason?: string;
  readonly secrets: readonly SecretView[];
  readonly access: { readonly roles: readonly string[]; readonly allowed: boolean };
}

/** `GET /api/me` (and the `hello` event's `user`). */
export interface Me {
  readonly id: string;
  /** Display name (the token's `name`, else its subject). */
  readonly name?: string;
  readonly roles: readonly string[];
  readonly admin: boolean;
}

/** One entry of `GET /api/projects`. */
export interface Project {
  readonly name: string;
  readonly path: string;
}

/** A line of a plugin's output, from `GET …/logs` (`time`) or a `log` event (`at`), unified. */
export interface LogLine {
  /** Milliseconds since the epoch. */
  readonly time: number;
  readonly stream: string;
  readonly line: string;
}

/** Messages of the `/api/events` WebSocket. */
export type ServerEvent =
  | { readonly type: 'hello'; readonly user: Me }
  | { readonly type: 'plugins'; readonly plugins: readonly PluginView[] }
  | { readonly type: 'plugin'; readonly plugin: PluginView }
  | { readonly type: 'removed'; readonly name: string }
  | {
      readonly type: 'log';
      readonly name: string;
      readonly at: string;
      readonly stream: string;
      readonly line: string;
    }
  /** Log lines the server skipped because this client was not reading fast enough. */
  | { readonly type: 'logs-dropped'; readonly count: number };

export type Theme = 'light' | 'dark';

/** What `api.context` gives a plugin frontend (the CloudCLI shape). */
export interface PluginContext {
  readonly theme: Theme;
  readonly project: Project | null;
  readonly session: null;
}

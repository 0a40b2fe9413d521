import { Transform } from 'class-transformer';
import {
  IsBase64,
  IsBoolean,
  IsIn,
  IsInt,
  IsOptional,
  IsString,
  IsUrl,
  Max,
  Min,
  MinLength,
} from 'class-validator';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const toInt = ({ value }: { value: unknown }): unknown =>
  typeof value === 'string' && /^-?\d+$/.test(value.trim()) ? Number(value.trim()) : value;
const toBool = ({ value }: { value: unknown }): unknown =>
  typeof value === 'string' && /^(true|false|1|0)$/i.test(value.trim())
    ? /^(true|1)$/i.test(value.trim())
    : value;
const toList = ({ value }: { value: unknown }): unknown =>
  typeof value === 'string'
    ? value
        .split(',')
        .map((v) => v.trim())
        .filter((v) => v.length > 0)
    : value;

/**
 * The host's whole configuration, read once from the environment at startup (docs/plugin-contract.md §6).
 * Property names are the environment variable names so validation messages name the variable.
 */
export class PorticoConfig {
  /** `production` makes missing keys a startup error instead of generating dev keys. */
  @IsString()
  public NODE_ENV: string = 'development';

  /** TCP port of the HTTP/WebSocket listener. */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(65535)
  public PORT: number = 8080;

  /**
   * Connections the kernel may hold for Portico before it accepts them (listen backlog). A
   * rollout reconnects every client of a drained pod at once; with Node's default (511) the queue
   * overflows, SYNs are dropped and clients retry after 1, 3, 7 s. The kernel caps it at
   * `net.core.somaxconn` (4096 on current Linux), which Portico logs at startup.
   */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(1048576)
  public LISTEN_BACKLOG: number = 65535;

  /** Interface to bind. */
  @IsString()
  public HOST: string = '0.0.0.0';

  /** Folder whose sub-folders each hold one plugin with a manifest.json. */
  @IsString()
  @MinLength(1)
  public PLUGINS_DIR: string = './plugins';

  /** Writable folder for host state: plugin enable flags, generated dev keys, plugin data. */
  @IsString()
  @MinLength(1)
  public DATA_DIR: string = './data';

  /** HS256 secret for user JWTs (at least 32 characters). */
  @IsOptional()
  @IsString()
  @MinLength(32, { message: 'JWT_SECRET must be at least 32 characters' })
  public JWT_SECRET?: string;

  /** JWKS endpoint for RS256/ES256 user JWTs. */
  @IsOptional()
  @IsUrl({ require_tld: false, protocols: ['http', 'https'] })
  public JWT_JWKS_URL?: string;

  @IsOptional()
  @IsString()
  public JWT_ISSUER?: string;

  @IsOptional()
  @IsString()
  public JWT_AUDIENCE?: string;

  /** Claim holding the user's roles (array or space/comma separated string). */
  @IsString()
  @MinLength(1)
  public JWT_ROLES_CLAIM: string = 'roles';

  /** Accept user tokens without an `exp` claim (their sessions never end); off by default. */
  @Transform(toBool)
  @IsBoolean({ message: 'JWT_ALLOW_NO_EXP must be true or false' })
  public JWT_ALLOW_NO_EXP: boolean = false;

  /**
   * OpenID Connect issuer URL: turns on single sign-on (`/api/auth/login`, docs/operations.md).
   * Discovery reads `<issuer>/.well-known/openid-configuration`. Needs OIDC_CLIENT_ID.
   */
  @IsOptional()
  @IsUrl({ require_tld: false, require_protocol: true, protocols: ['http', 'https'] })
  public OIDC_ISSUER?: string;

  @IsOptional()
  @IsString()
  @MinLength(1)
  public OIDC_CLIENT_ID?: string;

  /** For a confidential client; unset = a public client (PKCE only). Never logged. */
  @IsOptional()
  @IsString()
  @MinLength(1)
  public OIDC_CLIENT_SECRET?: string;

  /**
   * The redirect URI registered at the provider (`https://portico.example.com/api/auth/callback`);
   * unset = built from each request's Host and scheme.
   */
  @IsOptional()
  @IsUrl({ require_tld: false, require_protocol: true, protocols: ['http', 'https'] })
  public OIDC_REDIRECT_URL?: string;

  /** Where the provider sends the browser after sign-out; unset = `/` of the redirect URL's origin. */
  @IsOptional()
  @IsUrl({ require_tld: false, require_protocol: true, protocols: ['http', 'https'] })
  public OIDC_POST_LOGOUT_REDIRECT_URL?: string;

  /** Scopes asked for, space or comma separated; must include `openid`. */
  @IsString()
  @MinLength(1)
  public OIDC_SCOPES: string = 'openid profile email';

  /** Claim (a dotted path is allowed) holding the user's groups or roles. */
  @IsString()
  @MinLength(1)
  public OIDC_ROLES_CLAIM: string = 'groups';

  /** `group=role,group=role`: only mapped groups give roles. Unset: each group is a role. */
  @IsOptional()
  @IsString()
  public OIDC_ROLE_MAP?: string;

  /** A sign-in session unused this long ends. */
  @Transform(toInt)
  @IsInt()
  @Min(1000)
  @Max(2592000000)
  public SESSION_IDLE_TIMEOUT_MS: number = 3600000;

  /** A sign-in session ends this long after sign-in, however much it is used. */
  @Transform(toInt)
  @IsInt()
  @Min(5000)
  @Max(2592000000)
  public SESSION_MAX_AGE_MS: number = 43200000;

  /** Lifetime of the Portico tokens a signed-in browser gets from `POST /api/auth/token`. */
  @Transform(toInt)
  @IsInt()
  @Min(5000)
  @Max(86400000)
  public SESSION_TOKEN_TTL_MS: number = 300000;

  /** base64 of 32 bytes: encrypts stored plugin secrets and keys plugin identity derivation. */
  @IsOptional()
  @IsBase64()
  public SECRETS_KEY?: string;

  /** Mounted secret files `<dir>/<plugin>/<KEY>` (e.g. a Kubernetes Secret volume). */
  @IsOptional()
  @IsString()
  public PLUGIN_SECRETS_DIR?: string;

  /**
   * Folder whose sub-folders are the projects the console offers (one project each); the one a
   * user picks is `context.project` for plugin frontends (the terminal starts there).
   */
  @IsOptional()
  @IsString()
  public PROJECTS_DIR?: string;

  /**
   * YAML file declaring every plugin's enable flag, access roles and restart policy, shared by
   * all replicas (docs/operations.md); the management API then refuses state changes (409).
   * Unset: that state lives in DATA_DIR and is changed through the API (one replica).
   */
  @IsOptional()
  @IsString()
  @MinLength(1)
  public PLUGINS_CONFIG?: string;

  /**
   * `postgres://user:password@host:port/db`: plugin state (enable flags, access roles) kept in
   * PostgreSQL, shared and changed through the API on every replica (docs/operations.md).
   * Exclusive with PLUGINS_CONFIG. Credentials in it never reach a log or an API answer.
   */
  @IsOptional()
  @IsString()
  public DATABASE_URL?: string;

  /** How often PLUGINS_CONFIG is re-read. */
  @Transform(toInt)
  @IsInt()
  @Min(100)
  @Max(600000)
  public PLUGINS_CONFIG_POLL_MS: number = 1000;

  /**
   * Origins (`scheme://host[:port]`) besides the host itself whose pages may use cookie/query
   * credentials: for plugin WebSockets, RPC requests and state-changing API requests (CSRF rule,
   * docs/plugin-contract.md §5). Normalised and checked by loadConfig.
   */
  @Transform(toList)
  @IsString({ each: true })
  public ALLOWED_ORIGINS: string[] = [];

  @IsIn(LOG_LEVELS)
  public LOG_LEVEL: LogLevel = 'info';

  /** How long host shutdown waits for plugins and connections before killing them. */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(600000)
  public SHUTDOWN_GRACE_MS: number = 10000;

  /** Keepalive ping interval on proxied WebSockets; 0 disables pings. */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(3600000)
  public WS_PING_INTERVAL_MS: number = 25000;

  /** How long a plugin may take to answer a proxied WebSocket handshake (then 4504). */
  @Transform(toInt)
  @IsInt()
  @Min(100)
  @Max(600000)
  public WS_UPSTREAM_TIMEOUT_MS: number = 10000;

  /** How long a plugin may take to send the response head of an RPC request (then 504). */
  @Transform(toInt)
  @IsInt()
  @Min(100)
  @Max(3600000)
  public RPC_TIMEOUT_MS: number = 30000;

  /**
   * How long a client may take to send a request's head, WebSocket upgrades included; then 408
   * and the connection is closed (slowloris). A real client sends its head at once.
   */
  @Transform(toInt)
  @IsInt()
  @Min(100)
  @Max(600000)
  public HTTP_HEADERS_TIMEOUT_MS: number = 10000;

  /**
   * How long a client may take to send a whole request, body included (RPC uploads stream
   * through); 0 = no limit. Node's default; at least HTTP_HEADERS_TIMEOUT_MS.
   */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(86400000)
  public HTTP_REQUEST_TIMEOUT_MS: number = 300000;

  /** How long an idle kept-alive HTTP connection stays open. Node's default. */
  @Transform(toInt)
  @IsInt()
  @Min(100)
  @Max(600000)
  public HTTP_KEEP_ALIVE_TIMEOUT_MS: number = 5000;

  /**
   * Connections one client address (IPv6: one /64) may have open before its first request head
   * is read, counted from a second after each is accepted (a reconnect storm's heads are already
   * there); more are closed then, and beyond 64 times the cap at once. 0 = no cap. 64 leaves
   * room for several browsers behind one NAT (six connections per host each) while keeping a
   * single address far below the fd limit.
   */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(1000000)
  public MAX_HEADER_PHASE_CONNECTIONS_PER_IP: number = 64;

  /**
   * Addresses or CIDR subnets the header-phase cap does not apply to: a reverse proxy or load
   * balancer in front, through which every client shares one address.
   */
  @Transform(toList)
  @IsString({ each: true })
  public HEADER_PHASE_CAP_EXEMPT: string[] = [];

  /** Passed to plugin servers (docs/plugin-contract.md §2); nothing else of the host's environment is. */
  @IsOptional()
  @IsString()
  public PATH?: string;

  @IsOptional()
  @IsString()
  public HOME?: string;

  public get isProduction(): boolean {
    return this.NODE_ENV === 'production';
  }
}

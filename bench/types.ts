/** Shared between the harness (bench.ts) and the load client (client.ts). */

export const TARGETS = ['direct', 'nginx', 'portico', 'splice'] as const;
export type TargetName = (typeof TARGETS)[number];

/**
 * In the order they run. `storm` comes late because it leaves thousands of sockets in TIME_WAIT;
 * `idle` last because it starts fresh processes of its own.
 */
export const SCENARIOS = [
  'latency',
  'msgrate',
  'bulk',
  'connect',
  'connect-distinct',
  'rate5',
  'rate10',
  'storm',
  'idle',
] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

/** Where the load client connects for one target, and which process to weigh for memory. */
export interface TargetEndpoint {
  name: TargetName;
  url: string;
  headers: Record<string, string>;
  /** The process whose RSS is the "proxy" memory (the echo server itself for direct). */
  proxyPid: number;
  /** The echo upstream behind the proxy (reported for information only). */
  upstreamPid?: number;
  /**
   * The HS256 secret the target verifies tokens with (Portico, splice), so the client can mint
   * a distinct token per connection; targets without one get tokens they do not check.
   */
  jwtSecret?: string;
  /** The echo upstream's listening port, to watch its accept queue during the storm. */
  upstreamPort?: number;
}

export interface ScenarioParams {
  messageBytes: number;
  latencyRoundTrips: number;
  latencyWarmup: number;
  msgrateConnections: number;
  msgrateInFlight: number;
  /** Traffic before counting starts (msgrate and bulk). */
  warmupSeconds: number;
  msgrateSeconds: number;
  bulkConnections: number;
  bulkMessageBytes: number;
  bulkSeconds: number;
  connectCount: number;
  /** Unmeasured cycles first, as the other scenarios warm up too. */
  connectWarmup: number;
  connectConcurrency: number;
  idleConnections: number;
  /** Pause after the idle connections are open before RSS is read. */
  idleSettleMs: number;
  /** Connections of rate5 and rate10 (each sends at a fixed rate). */
  rateConnections: number;
  /** Traffic at the fixed rate before the measured window. */
  rateWarmupSeconds: number;
  rateSeconds: number;
  /** Clients of the storm, all connecting at once (bounded by the open-file limit). */
  stormClients: number;
  /** Storm clients sharing one loopback source address (127.0.0.2, 127.0.0.3, ...). */
  stormClientsPerAddress: number;
  /** A storm client that has not had its echo this long after the start gives up. */
  stormTimeoutMs: number;
  /** A scenario fails when no round trip completes for this long. */
  stallMs: number;
}

/**
 * The warm-up round: every scenario but idle once on every target before run 1, not recorded.
 * Portico, the splice, the echo plugin and the load client are JIT-compiled; without it a
 * target's first run measured up to a third slower than its later ones (connect 1,008 -> 1,387
 * -> 1,502 per second for Portico, 1,024 -> 1,439 -> 1,727 for the splice, in one invocation).
 */
export function warmupParams(p: ScenarioParams): ScenarioParams {
  return {
    ...p,
    latencyWarmup: 0,
    latencyRoundTrips: Math.min(p.latencyRoundTrips, 3000),
    warmupSeconds: 0,
    msgrateSeconds: Math.min(p.msgrateSeconds, 2),
    bulkSeconds: Math.min(p.bulkSeconds, 2),
    connectWarmup: 0,
    connectCount: Math.min(p.connectCount, 1500),
    rateWarmupSeconds: 0,
    rateSeconds: Math.min(p.rateSeconds, 2),
    stormClients: Math.min(p.stormClients, 1000),
  };
}

export type Metrics = Record<string, number>;

export type ClientRequest =
  | {
      type: 'run';
      id: number;
      scenario: ScenarioName | 'preflight';
      target: TargetEndpoint;
      params: ScenarioParams;
    }
  | { type: 'exit' };

export type ClientReply =
  | { type: 'ready' }
  /** `notes`: what a scenario wants said besides numbers (e.g. the storm's failure reasons). */
  | { type: 'result'; id: number; metrics: Metrics; notes?: string[] }
  | { type: 'error'; id: number; message: string };

import { Injectable } from '@nestjs/common';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';

/** Prometheus metrics of the host, in a registry of its own (no global state between apps). */
@Injectable()
export class PorticoMetrics {
  public readonly registry = new Registry();

  public readonly wsOpen = new Gauge({
    name: 'portico_ws_connections',
    help: 'Proxied WebSocket connections currently open',
    labelNames: ['plugin'] as const,
    registers: [this.registry],
  });

  public readonly wsHandshakes = new Counter({
    name: 'portico_ws_handshakes_total',
    help: 'WebSocket upgrade requests by outcome (relayed, or the HTTP status / close code)',
    labelNames: ['plugin', 'outcome'] as const,
    registers: [this.registry],
  });

  public readonly rpcRequests = new Counter({
    name: 'portico_rpc_requests_total',
    help: 'RPC requests proxied to plugins, by HTTP status class',
    labelNames: ['plugin', 'status'] as const,
    registers: [this.registry],
  });

  public readonly pluginExits = new Counter({
    name: 'portico_plugin_exits_total',
    help: 'Plugin server exits, by whether they were expected',
    labelNames: ['plugin', 'expected'] as const,
    registers: [this.registry],
  });

  public readonly pluginRunning = new Gauge({
    name: 'portico_plugin_running',
    help: '1 while the plugin server is running',
    labelNames: ['plugin'] as const,
    registers: [this.registry],
  });

  /** PLUGINS_CONFIG in force: the first 12 hex digits of its SHA-256, equal on every replica. */
  public readonly configGeneration = new Gauge({
    name: 'portico_config_generation',
    help: 'PLUGINS_CONFIG in force: first 12 hex digits of the SHA-256 of the file, as a number (0 without PLUGINS_CONFIG)',
    registers: [this.registry],
  });

  public readonly configValid = new Gauge({
    name: 'portico_config_valid',
    help: '0 while the PLUGINS_CONFIG file is invalid and an older config stays in force, else 1',
    registers: [this.registry],
  });

  public readonly configReloadFailures = new Counter({
    name: 'portico_config_reload_failures_total',
    help: 'PLUGINS_CONFIG contents that were read and refused (invalid or unreadable)',
    registers: [this.registry],
  });

  /** DATABASE_URL: the highest generation of plugin state this replica has loaded. */
  public readonly stateGeneration = new Gauge({
    name: 'portico_state_generation',
    help: 'DATABASE_URL: highest generation of plugin state loaded by this replica (compare across replicas)',
    registers: [this.registry],
  });

  /** Single sign-on: sign-ins by outcome (`ok`, or the HTTP status of the refusal). */
  public readonly signIns = new Counter({
    name: 'portico_sign_ins_total',
    help: 'Single sign-on: sign-in callbacks by outcome (ok, or the status of the refusal)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  /** Single sign-on: refreshes with the provider by outcome (ok, refused, unreachable). */
  public readonly sessionRefreshes = new Counter({
    name: 'portico_session_refreshes_total',
    help: 'Single sign-on: refresh-token grants by outcome (ok, refused: the session ended, unreachable: kept and retried)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  /** Open file descriptors / the soft limit (two per proxied WebSocket). */
  public readonly fdUsage = new Gauge({
    name: 'portico_fd_usage_ratio',
    help: 'Open file descriptors as a share of the open-file limit (each proxied WebSocket holds two); Portico warns at 0.8',
    registers: [this.registry],
  });

  /** Used V8 heap / its limit (`--max-old-space-size`). */
  public readonly heapUsage = new Gauge({
    name: 'portico_heap_usage_ratio',
    help: "Used V8 heap as a share of the heap's limit (--max-old-space-size); Portico warns at 0.8",
    registers: [this.registry],
  });

  /** Connections to the busiest plugin / the loopback ephemeral port range. */
  public readonly upstreamPortUsage = new Gauge({
    name: 'portico_upstream_port_usage_ratio',
    help: 'WebSockets to the busiest plugin as a share of the ephemeral ports one plugin can be dialed from (net.ipv4.ip_local_port_range); Portico warns at 0.8',
    registers: [this.registry],
  });

  public constructor() {
    this.configValid.set(1);
    collectDefaultMetrics({ register: this.registry, prefix: 'portico_' });
  }
}

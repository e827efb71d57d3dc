/**
 * The client agent: one per OPA. Starts (or reaches) OPA, then holds the stream to a
 * distributor and applies what arrives — policy and data — in log order, through one
 * write pipeline. This file is wiring: the parts are built in client-parts.ts, before
 * anything starts, and a supervisor starts them in order and stops them in reverse.
 *
 * The path of one update: stream-session → event-router → update-pipeline →
 * entry-applier → sync-state (data transaction with the status) → job-results →
 * sync-state.acknowledge.
 */
import type { ClientConfig } from "../common/config/client-config.js";
import { SupervisedComponent, Supervisor } from "../common/lifecycle.js";
import type { Logger } from "../common/logger.js";
import { createMetricsRegistry, type Registry } from "../common/telemetry/metrics.js";
import type { Tracing } from "../common/telemetry/tracing.js";
import { buildClientParts, type ClientParts } from "./client-parts.js";
import { loadProviderPlugins } from "./fetch/registry.js";
import type { ClientHealth } from "./health.js";
import type { ClientMetrics } from "./metrics.js";

export interface ClientAgentOptions {
  config: ClientConfig;
  logger: Logger;
  /** The OPA binary, when OPA runs inline. */
  opaBinary: string | undefined;
  /** Where third-party fetch provider modules are resolved from. */
  moduleBaseDir: string;
  /** The process's tracing (the composition root creates it and shuts it down). */
  tracing: Tracing;
  /** Where the client's metrics are recorded (served at /metrics); a new registry when absent. */
  registry?: Registry;
  /** How long stopping may take, every part together (10 s when absent). */
  shutdownTimeoutMs?: number;
}

/**
 * Builds a client agent, every part of it, without starting anything. Fetch provider
 * plugins load first: a bad OPAL_FETCH_PROVIDER_MODULES fails here, before OPA is spawned.
 */
export async function createClientAgent(options: ClientAgentOptions): Promise<ClientAgent> {
  const plugins = await loadProviderPlugins(options.config.fetchProviderModules, options.moduleBaseDir);
  const parts = buildClientParts({ ...options, plugins, registry: options.registry ?? createMetricsRegistry() });
  return new ClientAgent(parts, options);
}

export class ClientAgent extends SupervisedComponent {
  readonly name = "client";
  readonly health: ClientHealth;
  readonly metrics: ClientMetrics;
  protected readonly supervisor: Supervisor;

  constructor(
    private readonly parts: ClientParts,
    private readonly options: ClientAgentOptions,
  ) {
    super();
    this.health = parts.health;
    this.metrics = parts.metrics;
    this.supervisor = new Supervisor(parts.components, options.logger, options.shutdownTimeoutMs);
  }

  get apiPort(): number {
    return this.parts.api.port;
  }

  get storeUrl(): string {
    return this.options.config.policyStore.url;
  }

  /** The policy version the store holds. */
  get policyHash(): string {
    return this.parts.sync.policyHash;
  }

  /** The inline OPA's process id (tests kill it to prove the supervisor). */
  get inlineOpaPid(): number | undefined {
    return this.parts.storeProcess.inline?.pid;
  }

  /** Told as each source of a baseline load is fetched (the `client` command's progress bar). */
  onBaselineProgress(listener: (done: number, total: number) => void): void {
    this.parts.baselineListeners.push(listener);
  }

  /** Resolves when every queued update has been written. */
  async settled(): Promise<void> {
    await this.parts.pipeline.idle();
  }
}

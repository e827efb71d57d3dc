/**
 * The client's Prometheus metrics, served at /metrics on its own API. Fetches and store
 * writes are measured by wrapping the applier and the store the agent hands around;
 * position and connection are read from the client's health at scrape time.
 */
import { type DataSourceEntry, SaveMethod } from "../../gen/opal/mesh/v1/data_pb.js";
import { parseJsonBytes } from "../common/data-entries.js";
import { Counter, Gauge, Histogram, LATENCY_BUCKETS, type Registry, secondsSince } from "../common/telemetry/metrics.js";
import type { JobApplier, JobResult } from "./data/update-pipeline.js";
import { DEFAULT_FETCHER } from "./fetch/registry.js";
import type { ClientHealth } from "./health.js";
import type { PolicyStore } from "./policy-store.js";

/** The provider label for policy bundles, fetched from the server. */
export const POLICY_BUNDLE_PROVIDER = "PolicyService";

/**
 * The fetch provider an entry names (config.fetcher), as a label: only names the client
 * knows, so a publisher cannot mint series.
 */
export function providerLabel(entry: DataSourceEntry, known: readonly string[]): string {
  let name = DEFAULT_FETCHER;
  if (entry.configJson.length > 0) {
    try {
      const config = parseJsonBytes(entry.configJson) as { fetcher?: unknown } | null;
      if (typeof config?.fetcher === "string" && config.fetcher !== "") name = config.fetcher;
    } catch {
      // An unreadable config fails its fetch (and says why); as a label it is "unknown".
      return "unknown";
    }
  }
  return known.includes(name) ? name : "unknown";
}

export class ClientMetrics {
  /** The store, its writes measured: hand this one to whatever writes. */
  readonly store: PolicyStore;
  private readonly fetchDuration: Histogram<"kind" | "provider">;
  private readonly fetchErrors: Counter<"kind" | "provider">;
  private readonly writeDuration: Histogram<"operation">;
  private readonly writeErrors: Counter<"operation">;
  private readonly applied: Counter<"kind">;
  private readonly jobs = new Map<string, { applied: number; failed: number }>();
  private readonly failed: Counter<"kind">;
  private readonly reconnects: Counter;
  private readonly backupFailures: Counter;
  private everConnected = false;
  private connected = false;

  constructor(
    readonly registry: Registry,
    health: ClientHealth,
    store: PolicyStore,
  ) {
    const registers = [registry];
    this.fetchDuration = new Histogram({ name: "opal_mesh_client_fetch_duration_seconds", help: "Fetches of data source entries (kind=data, retries included) and policy bundles (kind=policy), by provider.", labelNames: ["kind", "provider"], buckets: [...LATENCY_BUCKETS], registers });
    this.fetchErrors = new Counter({ name: "opal_mesh_client_fetch_errors_total", help: "Fetches that failed (after their retries), by kind and provider.", labelNames: ["kind", "provider"], registers });
    this.writeDuration = new Histogram({ name: "opal_mesh_client_opa_write_duration_seconds", help: "Writes to OPA, by operation (data: documents and transactions; policy: modules).", labelNames: ["operation"], buckets: [...LATENCY_BUCKETS], registers });
    this.writeErrors = new Counter({ name: "opal_mesh_client_opa_write_errors_total", help: "Writes OPA refused or did not answer, by operation.", labelNames: ["operation"], registers });
    // Jobs are tallied as they finish and added when scraped: one labelled inc per event
    // (prom-client hashes the labels each time) was a visible share of a busy client.
    const jobs = this.jobs;
    this.applied = new Counter({ name: "opal_mesh_client_updates_applied_total", help: "Jobs written to OPA, by kind (event, baseline, periodic, manual, policy).", labelNames: ["kind"], registers, collect() {
      for (const [kind, tally] of jobs) {
        if (tally.applied > 0) this.inc({ kind }, tally.applied);
        tally.applied = 0;
      }
    } });
    this.failed = new Counter({ name: "opal_mesh_client_updates_failed_total", help: "Jobs that failed (entirely or in part), by kind.", labelNames: ["kind"], registers, collect() {
      for (const [kind, tally] of jobs) {
        if (tally.failed > 0) this.inc({ kind }, tally.failed);
        tally.failed = 0;
      }
    } });
    this.reconnects = new Counter({ name: "opal_mesh_client_reconnects_total", help: "Streams to a server opened again after the first one.", registers });
    new Gauge({ name: "opal_mesh_client_applied_position", help: "The last log position applied to OPA (0 while OPA does not hold the state up to it).", registers, collect() {
      this.set(health.storeState.held ? Number(health.appliedPosition) : 0);
    } });
    this.backupFailures = new Counter({ name: "opal_mesh_client_backup_failures_total", help: "Offline-mode store backups that could not be written (the earlier backup is kept).", registers });
    new Gauge({ name: "opal_mesh_client_backup_last_success_timestamp_seconds", help: "When the last offline-mode store backup was written (Unix seconds; 0 before the first, or with offline mode off).", registers, collect() {
      const at = health.backup?.lastSuccessAt;
      this.set(at === undefined ? 0 : Date.parse(at) / 1000);
    } });
    new Gauge({ name: "opal_mesh_client_state_held", help: "1 while OPA holds the state the client claims; 0 from the moment it lost it until it holds it again.", registers, collect() {
      this.set(health.storeState.held ? 1 : 0);
    } });
    new Gauge({ name: "opal_mesh_client_stream_connected", help: "1 while the stream to a server is up.", registers, collect() {
      this.set(health.streamConnected ? 1 : 0);
    } });
    new Gauge({ name: "opal_mesh_client_stale", help: "1 while the data in OPA counts as stale (data.system.opal.stale: stream down too long, too far behind the head, or the last update failed).", registers, collect() {
      this.set(health.staleness.stale ? 1 : 0);
    } });
    this.backupFailures.inc(0);
    for (const operation of ["data", "policy"]) {
      this.writeDuration.zero({ operation });
      this.writeErrors.inc({ operation }, 0);
    }
    this.store = this.measureStore(store);
  }

  /** The same applier, its fetches measured (inline data and deletes fetch nothing). */
  applier(applier: JobApplier, providers: () => readonly string[]): JobApplier {
    const measured: JobApplier = {
      fetch: async (...args: Parameters<JobApplier["fetch"]>) => {
        const [entry, signal] = args;
        if (entry.saveMethod === SaveMethod.DELETE || entry.dataJson !== undefined) return applier.fetch(...args);
        return this.measureFetch("data", providerLabel(entry, providers()), () => applier.fetch(...args), signal);
      },
      commit: (...args: Parameters<JobApplier["commit"]>) => applier.commit(...args),
    };
    const many = applier.commitMany?.bind(applier);
    if (many !== undefined) measured.commitMany = (...args) => many(...args);
    return measured;
  }

  /** A policy bundle fetch from the server. */
  fetchPolicy<T>(fetch: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return this.measureFetch("policy", POLICY_BUNDLE_PROVIDER, fetch, signal);
  }

  /** A finished pipeline job (backups are not updates). */
  jobDone(result: JobResult): void {
    if (result.job.kind === "backup") return;
    let tally = this.jobs.get(result.job.kind);
    if (tally === undefined) {
      tally = { applied: 0, failed: 0 };
      this.jobs.set(result.job.kind, tally);
    }
    if (result.ok) tally.applied++;
    else tally.failed++;
  }

  /** An offline-mode backup was written (or failed). */
  backupSaved(ok: boolean): void {
    if (!ok) this.backupFailures.inc();
  }

  streamConnection(connected: boolean): void {
    if (connected && !this.connected && this.everConnected) this.reconnects.inc();
    if (connected) this.everConnected = true;
    this.connected = connected;
  }

  /** A fetch abandoned (the job was dropped, the client stopping) is not a failed fetch: not counted. */
  private async measureFetch<T>(kind: "data" | "policy", provider: string, fetch: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const started = performance.now();
    try {
      const result = await fetch();
      this.fetchDuration.observe({ kind, provider }, secondsSince(started));
      return result;
    } catch (error) {
      if (signal?.aborted !== true) {
        this.fetchErrors.inc({ kind, provider });
        this.fetchDuration.observe({ kind, provider }, secondsSince(started));
      }
      throw error;
    }
  }

  private async measureWrite<T>(operation: "data" | "policy", write: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      return await write();
    } catch (error) {
      this.writeErrors.inc({ operation });
      throw error;
    } finally {
      this.writeDuration.observe({ operation }, secondsSince(started));
    }
  }

  private measureStore(store: PolicyStore): PolicyStore {
    return {
      name: store.name,
      isHealthy: (signal) => store.isHealthy(signal),
      readData: (path, signal) => store.readData(path, signal),
      exists: (path, signal) => store.exists(path, signal),
      listPolicies: (signal) => store.listPolicies(signal),
      close: () => store.close(),
      writeData: (write, signal) => this.measureWrite("data", () => store.writeData(write, signal)),
      patch: (operations, signal) => (operations.length === 0 ? store.patch(operations, signal) : this.measureWrite("data", () => store.patch(operations, signal))),
      putPolicy: (id, rego, signal) => this.measureWrite("policy", () => store.putPolicy(id, rego, signal)),
      deletePolicy: (id, signal) => this.measureWrite("policy", () => store.deletePolicy(id, signal)),
    };
  }
}

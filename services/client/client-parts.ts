/**
 * Every part of a client agent, built before anything starts, and the order they start in
 * (dependencies first; they stop in reverse). Parts that need one another before it exists
 * (the stream's handlers and the ACKs it sends) meet through closures over the finished set.
 */
import { Security } from "../common/auth/security.js";
import type { ClientConfig } from "../common/config/client-config.js";
import { GlobSet } from "../common/globs.js";
import type { HttpListener } from "../common/http/listener.js";
import { component, type Component } from "../common/lifecycle.js";
import type { Logger } from "../common/logger.js";
import { ReservedPaths } from "../common/reserved-paths.js";
import type { Registry } from "../common/telemetry/metrics.js";
import type { Tracing } from "../common/telemetry/tracing.js";
import { UrlAllowlist } from "../common/url-allowlist.js";
import { createClientApi } from "./api-server.js";
import { consistencyRoutes } from "./consistency-api.js";
import { BaselineSource } from "./data/baseline-source.js";
import { DataTransactions } from "./data/data-transaction.js";
import { DataUpdater } from "./data/data-updater.js";
import { EntryApplier } from "./data/entry-applier.js";
import { UpdatePipeline, type UpdateJob } from "./data/update-pipeline.js";
import { EventRouter } from "./event-router.js";
import { FetchGuard } from "./fetch/fetch-guard.js";
import { FetchProviderRegistry } from "./fetch/registry.js";
import { Freshness } from "./freshness.js";
import type { FetchProviderPlugin } from "./fetch/types.js";
import { ClientHealth } from "./health.js";
import { healthReport, HealthReports } from "./health-reports.js";
import { jobResults } from "./job-results.js";
import { ClientMetrics } from "./metrics.js";
import { InlineOpa } from "./opa/inline-opa.js";
import { OpaStore } from "./opa/opa-store.js";
import type { PolicyStore } from "./policy-store.js";
import { StoreProcess } from "./opa/store-process.js";
import { inlinePreloader } from "./policy/policy-preload.js";
import { PolicyUpdater } from "./policy/policy-updater.js";
import { UpdateReporter } from "./reporter.js";
import { StoreBackup } from "./store-backup.js";
import { STATUS_REFRESH } from "./store-watch.js";
import { StoreRecovery } from "./store-recovery.js";
import { BackupSchedule, LivenessProbe } from "./store-watch.js";
import { StreamSession } from "./stream-session.js";
import { SyncState } from "./sync-state.js";

export interface ClientPartsOptions {
  config: ClientConfig;
  logger: Logger;
  opaBinary: string | undefined;
  plugins: readonly FetchProviderPlugin[];
  registry: Registry;
  tracing: Tracing;
  /** A stand-in for OPA's REST API, for unit tests of the wiring only; OPA itself when absent. */
  store?: PolicyStore;
}

export interface ClientParts {
  health: ClientHealth;
  metrics: ClientMetrics;
  storeProcess: StoreProcess;
  api: HttpListener;
  stream: StreamSession;
  pipeline: UpdatePipeline;
  router: EventRouter;
  sync: SyncState;
  /** Told as each fetch of a baseline settles. */
  baselineListeners: Array<(done: number, total: number) => void>;
  /** In start order. */
  components: Component[];
}

export function buildClientParts(options: ClientPartsOptions): ClientParts {
  const { config, logger, tracing } = options;
  const health = new ClientHealth(config.dataUpdaterEnabled, config.policyUpdaterEnabled);
  const opa = options.store ?? new OpaStore({ url: config.policyStore.url, authToken: config.policyStore.authToken, tls: config.storeTls });
  const metrics = new ClientMetrics(options.registry, health, opa);
  const store = metrics.store;

  const inline = config.inlineOpa.enabled ? inlineOpa() : undefined;
  const storeProcess = new StoreProcess(opa, inline, config.policyStore.url, logger);
  const backup = config.offline.enabled ? new StoreBackup(config.offline.backupPath, store, logger.child({ component: "backup" }), (ok) => metrics.backupSaved(ok)) : undefined;
  health.backup = backup?.health;

  // A change of staleness is written to OPA's status document in the pipeline's order.
  const freshness = new Freshness(config.freshness, (staleness) => {
    health.staleness = staleness;
    if (staleness.stale) logger.warn({ since: staleness.since, reasons: staleness.reasons }, "the data in OPA is stale");
    else logger.info("the data in OPA is fresh again");
    pipeline.enqueue({ kind: "backup", updateId: STATUS_REFRESH, reason: "staleness changed", entries: [], task: (signal) => sync.refresh(signal) });
  });
  const consistency = consistencyRoutes({ freshness, storeUrl: config.policyStore.url, storeTls: config.storeTls, maxWaitMs: config.freshness.maxWaitMs });
  const allowlist = new UrlAllowlist(config.fetchAllowlist);
  const api: HttpListener = createClientApi({
    host: config.apiHost,
    port: config.apiPort,
    health,
    dataUpdaterEnabled: config.dataUpdaterEnabled,
    policyUpdaterEnabled: config.policyUpdaterEnabled,
    triggerDataRefresh: () => dataUpdater.loadBaseline("triggered refresh"),
    triggerPolicyRefresh: () => router.syncPolicy("triggered refresh"),
    security: new Security(config.auth),
    tls: config.apiTls,
    metrics: metrics.registry,
    limits: config.apiListener,
    allowedOrigins: config.allowedOrigins,
    consistency: consistency.routes,
  });
  const guard = fetchGuard(config, allowlist, api);
  const reporter = new UpdateReporter({ ...config.reporting, allowlist, guard, logger: logger.child({ component: "reporter" }) });
  const fetchers = new FetchProviderRegistry(options.plugins, { logger: logger.child({ component: "fetch" }), timeoutMs: config.httpFetcherTimeoutMs, guard });

  const sync = new SyncState({
    health,
    clientId: config.clientId,
    transactions: new DataTransactions(store),
    sendAck: (ack) => stream.sendAck(ack),
    onLost: (reason) => recovery.lost(reason),
    positions: { committed: (mark) => freshness.committed(mark.logId, mark.position), forgotten: () => freshness.forgotten(), headSeen: (position) => freshness.headSeen(position) },
  });
  const baselineListeners: Array<(done: number, total: number) => void> = [];
  const applier = new EntryApplier({
    registry: fetchers,
    status: sync,
    fetchRetry: config.dataUpdaterRetry,
    storeRetry: config.policyStoreRetry,
    splitRootData: config.splitRootData,
    allowlist,
    reservedPaths: new ReservedPaths(config.writableSystemPaths),
    logger: logger.child({ component: "data" }),
    storeUrl: config.policyStore.url,
  });
  const pipeline = new UpdatePipeline({
    applier: metrics.applier(applier, () => fetchers.names()),
    concurrency: config.fetchingWorkerCount,
    logger,
    clientId: config.clientId,
    hashes: config.reporting.enabled,
    onResult: (result) => onResult(result),
    onFetched: (job: UpdateJob, done, total) => {
      if (job.kind === "baseline") for (const listener of baselineListeners) listener(done, total);
    },
  });
  health.pending = () => pipeline.pending;
  const recovery = new StoreRecovery({ store, health, sync, pipeline, backup, logger, reconnect: () => stream.reconnect() });

  const serverUrl = (): string => stream.serverUrl;
  const dataUpdater = new DataUpdater({
    topics: config.dataTopics,
    pipeline,
    baseline: new BaselineSource({ serverUrl, configUrl: config.dataSourcesConfigUrl, token: config.token, clientId: config.clientId, scope: config.scopeId, timeoutMs: 10_000, tls: config.serverTls }),
    health,
    logger: logger.child({ component: "data" }),
    policyDataRoots: () => sync.rootDataKeys,
  });
  const policyUpdater = new PolicyUpdater({
    serverUrl,
    token: config.token,
    dirs: config.policySubscriptionDirs,
    scope: config.scopeId,
    store,
    status: sync,
    ignore: new GlobSet(config.policyPathsToIgnore),
    health,
    logger: logger.child({ component: "policy" }),
    timeoutMs: 60_000,
    tls: config.serverTls,
    storeUrl: config.policyStore.url,
    measureFetch: (fetch, signal) => metrics.fetchPolicy(fetch, signal),
    fetchRetry: config.policyUpdaterRetry,
    preload: inline === undefined ? undefined : inlinePreloader(() => inline, logger.child({ component: "policy" })),
    verifier: config.policyVerifier,
  });
  const onResult = jobResults({ health, metrics, reporter, dataUpdater, recovery, sync, logger, backupPath: config.offline.backupPath, updateSettled: (error) => freshness.updateSettled(error) });

  const healthReports = new HealthReports({ snapshot: () => healthReport(health), send: (report) => stream.sendReport(report) });
  const router = new EventRouter({
    clientId: config.clientId,
    labels: config.labels,
    scope: config.scopeId,
    dataEnabled: config.dataUpdaterEnabled,
    policyEnabled: config.policyUpdaterEnabled,
    sync,
    pipeline,
    dataUpdater,
    policyUpdater,
    tracing,
    logger,
    onConnectionChange: (connected, error) => {
      metrics.streamConnection(connected);
      health.streamConnected = connected;
      health.streamError = error;
      freshness.connection(connected);
    },
    onSession: () => healthReports.sendNow(),
  });
  const topics = [...(config.dataUpdaterEnabled ? config.dataTopics : []), ...(config.policyUpdaterEnabled ? config.policySubscriptionDirs.map((dir) => `policy:${dir}`) : [])];
  const stream = new StreamSession({
    serverUrls: config.serverUrls,
    token: config.token,
    clientId: config.clientId,
    topics,
    scope: config.scopeId,
    labels: config.labels,
    logger: logger.child({ component: "stream" }),
    resumePoint: () => sync.resumePoint,
    policyHash: () => sync.policyHash,
    tls: config.serverTls,
    handlers: router,
  });
  const liveness = new LivenessProbe({ store, health, written: () => sync.written, pipeline, intervalMs: config.livenessProbeIntervalMs, logger: logger.child({ component: "liveness" }), onLost: () => recovery.lost("OPA answers without the client's status document") });

  const components: Component[] = [
    // Spans of this agent are flushed last; the composition root shuts tracing down.
    component("tracing", { stop: () => tracing.forceFlush() }),
    storeProcess,
    fetchers,
    reporter,
    recovery,
    // Before the pipeline, so that it stops after it: the last backup sees a quiet store.
    ...(backup === undefined ? [] : [new BackupSchedule(backup, pipeline, config.offline.backupIntervalMs, health, logger.child({ component: "backup" }))]),
    pipeline,
    dataUpdater,
    freshness.component(),
    component("client-api", { start: () => api.start(), stop: () => Promise.all([api.stop(), consistency.close()]).then(() => undefined) }),
    healthReports,
    component("stream-session", { start: (signal) => stream.start(signal), stop: () => stream.stop() }),
    liveness,
  ];
  return { health, metrics, storeProcess, api, stream, pipeline, router, sync, baselineListeners, components };

  function inlineOpa(): InlineOpa {
    if (options.opaBinary === undefined) throw new Error("inline OPA is enabled but no OPA binary was given");
    return new InlineOpa({
      binary: options.opaBinary,
      config: config.inlineOpa,
      url: config.policyStore.url,
      logger: logger.child({ component: "inline-opa" }),
      // Not healthy from the exit on, not only once the empty OPA is back and answering.
      onExit: () => health.storeState.lose("the inline OPA exited"),
      onRestart: () => recovery.lost("the inline OPA restarted"),
    });
  }
}

/** What no fetch or report may reach: this client's OPA, and its API (its port is known once it listens). */
function fetchGuard(config: ClientConfig, allowlist: UrlAllowlist, api: HttpListener): FetchGuard {
  const apiHost = config.apiHost.includes(":") ? `[${config.apiHost}]` : config.apiHost;
  // Until the API listens, the configured port (0: not known yet).
  const apiPort = (): number | undefined => (api.port !== 0 ? api.port : config.apiPort === 0 ? undefined : config.apiPort);
  return new FetchGuard({
    allowlist,
    endpoints: [
      { name: "the client's own OPA", url: () => config.policyStore.url },
      { name: "the client's own API", url: () => (apiPort() === undefined ? undefined : `http://${apiHost}:${apiPort()}`) },
    ],
  });
}

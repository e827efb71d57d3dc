/**
 * The client agent: one per OPA. Starts (or reaches) OPA, then holds the stream to a
 * distributor and applies what arrives — policy and data — in log order, through one
 * write pipeline.
 */
import { AckStatus } from "../../gen/opal/mesh/v1/distributor_pb.js";
import type { Event } from "../../gen/opal/mesh/v1/event_pb.js";
import { Security } from "../common/auth/security.js";
import { type Closed, Closing } from "../common/lifecycle.js";
import type { ClientConfig } from "../common/config/client-config.js";
import { GlobSet } from "../common/globs.js";
import { UrlAllowlist } from "../common/url-allowlist.js";
import { ReservedPaths } from "../common/reserved-paths.js";
import type { HttpListener } from "../common/http/listener.js";
import type { Logger } from "../common/logger.js";
import { createClientApi } from "./api-server.js";
import { BaselineSource } from "./data/baseline-source.js";
import { DataTransactions, StoreLostStateError } from "./data/data-transaction.js";
import { DataUpdater } from "./data/data-updater.js";
import { EntryApplier } from "./data/entry-applier.js";
import { type JobResult, UpdatePipeline } from "./data/update-pipeline.js";
import { FetchGuard } from "./fetch/fetch-guard.js";
import { FetchProviderRegistry, loadProviderPlugins } from "./fetch/registry.js";
import { ClientHealth } from "./health.js";
import { ClientMetrics } from "./metrics.js";
import { createMetricsRegistry, type Registry } from "../common/telemetry/metrics.js";
import { healthReport, HealthReports } from "./health-reports.js";
import { inlinePreloader } from "./policy/policy-preload.js";
import { InlineOpa } from "./opa/inline-opa.js";
import { OpaStore } from "./opa/opa-store.js";
import { type PositionMark, readStatus, STATUS_PATH, StatusDocument } from "./opa-status.js";
import { UpdateReporter } from "./reporter.js";
import { StoreBackup } from "./store-backup.js";
import { noteJob } from "./store-state.js";
import { enqueueStatusRefresh, readStatusDocument, STATUS_REFRESH, startBackups, startLivenessProbe, waitForStore } from "./store-watch.js";
import { PolicyUpdater } from "./policy/policy-updater.js";
import { type ResumePoint, StreamSession } from "./stream-session.js";
import { UpdateTrace } from "./update-trace.js";
import { tracingFor, type Tracing } from "../common/telemetry/tracing.js";

export interface ClientAgentOptions {
  config: ClientConfig;
  logger: Logger;
  /** The OPA binary, when OPA runs inline. */
  opaBinary: string | undefined;
  /** Where third-party fetch provider modules are resolved from. */
  moduleBaseDir: string;
  /** Where the client's metrics are recorded (served at /metrics); a new registry when absent. */
  registry?: Registry;
}

export class ClientAgent {
  readonly name = "client";
  readonly health: ClientHealth;
  readonly store: OpaStore;
  readonly status: StatusDocument;
  private readonly transactions: DataTransactions;
  /** OPA held a position but an unfinished baseline: load it again after resuming. */
  private baselineIncomplete = false;
  private inlineOpa: InlineOpa | undefined;
  private api: HttpListener | undefined;
  private stream: StreamSession | undefined;
  private pipeline: UpdatePipeline | undefined;
  private registry: FetchProviderRegistry | undefined;
  private dataUpdater: DataUpdater | undefined;
  private policyUpdater: PolicyUpdater | undefined;
  private livenessTimer: NodeJS.Timeout | undefined;
  private backupTimer: NodeJS.Timeout | undefined;
  private backup: StoreBackup | undefined;
  private reporter: UpdateReporter | undefined;
  private healthReports: HealthReports | undefined;
  private lastReceived: ResumePoint | undefined;
  private readonly controller = new AbortController();
  private readonly closing = new Closing();
  private stopping: Promise<void> | undefined;
  private readonly tracing: Tracing;
  private readonly baselineListeners: Array<(done: number, total: number) => void> = [];
  readonly metrics: ClientMetrics;

  constructor(private readonly options: ClientAgentOptions) {
    const { config } = options;
    this.health = new ClientHealth(config.dataUpdaterEnabled, config.policyUpdaterEnabled);
    this.store = new OpaStore({ url: config.policyStore.url, authToken: config.policyStore.authToken, tls: config.storeTls });
    this.status = new StatusDocument(this.health, config.clientId);
    this.metrics = new ClientMetrics(options.registry ?? createMetricsRegistry(), this.health, this.store);
    this.transactions = new DataTransactions(this.metrics.store);
    this.tracing = tracingFor(config.telemetry);
  }

  get apiPort(): number {
    return this.api?.port ?? 0;
  }

  get storeUrl(): string {
    return this.options.config.policyStore.url;
  }

  /** The policy version the store holds. */
  get policyHash(): string {
    return this.status.policyHash;
  }

  /** The inline OPA's process id (tests kill it to prove the supervisor). */
  get inlineOpaPid(): number | undefined {
    return this.inlineOpa?.pid;
  }

  async start(signal: AbortSignal): Promise<void> {
    try {
      await this.startParts(signal);
    } catch (error) {
      // Leave nothing running (OPA above all) when start-up fails half way.
      await this.stop().catch(() => undefined);
      throw error;
    }
  }

  stop(): Promise<void> {
    this.stopping ??= this.stopParts().finally(() => this.closing.stopped());
    return this.stopping;
  }

  get closed(): Promise<Closed> {
    return this.closing.closed;
  }

  private async stopParts(): Promise<void> {
    this.controller.abort();
    this.healthReports?.stop();
    clearInterval(this.livenessTimer);
    clearInterval(this.backupTimer);
    await this.stream?.stop();
    await this.pipeline?.stopped();
    // A last backup, from the state the pipeline left (it is stopped: nothing writes now).
    if (this.backup !== undefined && this.health.engineReachable) {
      await this.backup.save().catch((error: unknown) => this.options.logger.warn({ err: (error as Error).message }, "final store backup failed"));
    }
    await this.reporter?.stop();
    await this.api?.stop();
    await this.registry?.close();
    await this.inlineOpa?.stop();
    await this.store.close();
    await this.tracing.shutdown();
  }

  /** Told as each source of a baseline load is fetched (the `client` command's progress bar). */
  onBaselineProgress(listener: (done: number, total: number) => void): void {
    this.baselineListeners.push(listener);
  }

  /** Resolves when every queued update has been written. */
  async settled(): Promise<void> {
    await this.pipeline?.idle();
  }

  private async startParts(signal: AbortSignal): Promise<void> {
    const { config, logger } = this.options;
    signal.addEventListener("abort", () => this.controller.abort(), { once: true });
    const ownSignal = this.controller.signal;
    // Plugins first: a bad OPAL_FETCH_PROVIDER_MODULES fails start-up before OPA is spawned.
    const plugins = await loadProviderPlugins(config.fetchProviderModules, this.options.moduleBaseDir);
    await this.startStore(ownSignal);
    if (config.offline.enabled) {
      this.backup = new StoreBackup(config.offline.backupPath, this.store, logger.child({ component: "backup" }), (ok) => this.metrics.backupSaved(ok));
      this.health.backup = this.backup.health;
      // An empty store (a fresh or restarted OPA) starts from the backup, server or not.
      if (!(await this.store.exists(STATUS_PATH, ownSignal))) {
        const restored = await this.backup.restore(ownSignal);
        // Not used: claim nothing until the server's policy and baseline are loaded.
        if (restored.problem !== undefined) this.health.storeState.lose(restored.problem);
      }
    }
    const allowlist = new UrlAllowlist(config.fetchAllowlist);
    const guard = this.fetchGuard(allowlist);
    this.reporter = new UpdateReporter({ ...config.reporting, allowlist, guard, logger: logger.child({ component: "reporter" }) });

    this.registry = new FetchProviderRegistry(plugins, { logger: logger.child({ component: "fetch" }), timeoutMs: config.httpFetcherTimeoutMs, guard });
    const serverUrl = (): string => this.stream?.serverUrl ?? (config.serverUrls[0] as string);
    const pipeline = new UpdatePipeline({
      applier: this.metrics.applier(new EntryApplier({
        onStoreLost: () => this.rehydrate("a write found the client's status document gone from OPA"),
        registry: this.registry,
        transactions: this.transactions,
        status: this.status,
        fetchRetry: config.dataUpdaterRetry,
        storeRetry: config.policyStoreRetry,
        splitRootData: config.splitRootData,
        allowlist,
        reservedPaths: new ReservedPaths(config.writableSystemPaths),
        logger: logger.child({ component: "data" }),
        storeUrl: config.policyStore.url,
      }), () => this.registry?.names() ?? []),
      concurrency: config.fetchingWorkerCount,
      logger,
      onResult: (result) => this.onResult(result),
      onFetched: (job, done, total) => {
        if (job.kind === "baseline") for (const listener of this.baselineListeners) listener(done, total);
      },
    });
    this.pipeline = pipeline;
    this.health.pending = () => pipeline.pending;
    this.dataUpdater = new DataUpdater({
      topics: config.dataTopics,
      pipeline,
      baseline: new BaselineSource({ serverUrl, configUrl: config.dataSourcesConfigUrl, token: config.token, clientId: config.clientId, scope: config.scopeId, timeoutMs: 10_000, tls: config.serverTls }),
      health: this.health,
      logger: logger.child({ component: "data" }),
      sendAck: (ack) => this.stream?.sendAck(ack),
    });
    this.policyUpdater = new PolicyUpdater({
      serverUrl,
      token: config.token,
      dirs: config.policySubscriptionDirs,
      scope: config.scopeId,
      store: this.metrics.store,
      status: this.status,
      ignore: new GlobSet(config.policyPathsToIgnore),
      health: this.health,
      logger: logger.child({ component: "policy" }),
      timeoutMs: 60_000,
      tls: config.serverTls,
      storeUrl: config.policyStore.url,
      measureFetch: (fetch, signal) => this.metrics.fetchPolicy(fetch, signal),
      fetchRetry: config.policyUpdaterRetry,
      preload: config.inlineOpa.enabled ? inlinePreloader(() => this.inlineOpa, logger.child({ component: "policy" })) : undefined,
    });
    await this.restoreStatus(ownSignal);
    pipeline.start(ownSignal);
    if (this.backup !== undefined) this.backupTimer = startBackups(this.backup, pipeline, config.offline.backupIntervalMs);
    this.dataUpdater.start(ownSignal);

    this.api = createClientApi({
      host: config.apiHost,
      port: config.apiPort,
      health: this.health,
      dataUpdaterEnabled: config.dataUpdaterEnabled,
      policyUpdaterEnabled: config.policyUpdaterEnabled,
      triggerDataRefresh: () => this.dataUpdater?.loadBaseline("triggered refresh"),
      triggerPolicyRefresh: () => this.enqueuePolicySync("triggered refresh"),
      security: new Security(config.auth),
      tls: config.apiTls,
      metrics: this.metrics.registry,
      limits: config.apiListener,
      allowedOrigins: config.allowedOrigins,
    });
    await this.api.start();

    this.stream = this.createStream();
    this.healthReports = new HealthReports({ snapshot: () => healthReport(this.health), send: (report) => this.stream?.sendReport(report) });
    this.healthReports.start(ownSignal);
    await this.stream.start(ownSignal);
    this.livenessTimer = startLivenessProbe({ store: this.store, health: this.health, status: this.status, pipeline, intervalMs: config.livenessProbeIntervalMs, onLost: () => this.rehydrate("OPA answers without the client's status document"), signal: ownSignal });
  }

  /** What no fetch or report may reach: this client's OPA, and its API (its port is known once it listens). */
  private fetchGuard(allowlist: UrlAllowlist): FetchGuard {
    const { config } = this.options;
    const apiHost = config.apiHost.includes(":") ? `[${config.apiHost}]` : config.apiHost;
    // Until the API listens, the configured port (0: not known yet).
    const apiPort = (): number | undefined => (this.api !== undefined && this.api.port !== 0 ? this.api.port : config.apiPort === 0 ? undefined : config.apiPort);
    return new FetchGuard({
      allowlist,
      endpoints: [
        { name: "the client's own OPA", url: () => config.policyStore.url },
        { name: "the client's own API", url: () => (apiPort() === undefined ? undefined : `http://${apiHost}:${apiPort()}`) },
      ],
    });
  }

  private async startStore(signal: AbortSignal): Promise<void> {
    const { config, logger } = this.options;
    if (!config.inlineOpa.enabled) {
      await waitForStore(this.store, logger, signal);
      return;
    }
    if (this.options.opaBinary === undefined) throw new Error("inline OPA is enabled but no OPA binary was given");
    this.inlineOpa = new InlineOpa({
      binary: this.options.opaBinary,
      config: config.inlineOpa,
      url: config.policyStore.url,
      logger: logger.child({ component: "inline-opa" }),
      // Not healthy from the exit on, not only once the empty OPA is back and answering.
      onExit: () => this.health.storeState.lose("the inline OPA exited"),
      onRestart: () => this.rehydrate("the inline OPA restarted"),
    });
    await this.inlineOpa.start(signal);
    logger.info({ url: config.policyStore.url }, "inline OPA is up");
  }

  private createStream(): StreamSession {
    const { config, logger } = this.options;
    const topics = [...(config.dataUpdaterEnabled ? config.dataTopics : []), ...(config.policyUpdaterEnabled ? config.policySubscriptionDirs.map((dir) => `policy:${dir}`) : [])];
    return new StreamSession({
      serverUrls: config.serverUrls,
      token: config.token,
      clientId: config.clientId,
      topics,
      scope: config.scopeId,
      logger: logger.child({ component: "stream" }),
      resumePoint: () => this.lastReceived,
      policyHash: () => this.policyHash,
      tls: config.serverTls,
      handlers: {
        onConnectionChange: (connected, error) => {
          this.metrics.streamConnection(connected);
          this.health.streamConnected = connected;
          this.health.streamError = error;
        },
        onWelcome: (welcome, resumed) => {
          this.healthReports?.sendNow();
          if (resumed) {
            logger.info({ position: this.lastReceived?.position.toString() }, "resumed: the distributor replays what was missed");
            if (this.baselineIncomplete) this.dataUpdater?.loadBaseline("baseline was not complete");
            this.baselineIncomplete = false;
            return;
          }
          // Subscribed first (events after the head are on their way), then the baseline:
          // nothing published meanwhile is lost (DESIGN.md §3).
          this.lastReceived = { logId: welcome.logId, position: welcome.headPosition };
          this.loadBaseline("Initial load", this.lastReceived);
        },
        onEvent: (event) => {
          const logId = this.lastReceived?.logId ?? "";
          this.lastReceived = { logId, position: event.position };
          this.onEvent(event, logId);
        },
        onResync: (resync) => {
          this.lastReceived = { logId: this.lastReceived?.logId ?? "", position: resync.headPosition };
          logger.warn({ reason: resync.reason }, "resync: reloading policy and data");
          this.loadBaseline(`Resync: ${resync.reason}`, this.lastReceived);
        },
      },
    });
  }

  /**
   * Policy first, then every baseline data source, ahead of the events that follow; the
   * baseline's transaction moves OPA's position to `mark`, the head it was taken at.
   */
  private loadBaseline(reason: string, mark: PositionMark): void {
    const { config } = this.options;
    this.pipeline?.clear();
    if (config.policyUpdaterEnabled) this.enqueuePolicySync(reason, config.dataUpdaterEnabled ? undefined : mark);
    if (config.dataUpdaterEnabled) this.dataUpdater?.loadBaseline(reason, mark);
  }

  private onEvent(event: Event, logId: string): void {
    const trace = UpdateTrace.forEvent(this.tracing, event, this.options.config.clientId);
    if (event.payload.case === "dataUpdate") {
      this.dataUpdater?.onEvent(event, logId, trace);
    } else if (event.payload.case === "policyChanged") {
      // Announcing what OPA already holds (a new publisher re-announces): only the position
      // moves. Decided when the job runs: a baseline queued ahead of it may load that version.
      const { hash } = event.payload.value;
      this.enqueuePolicySync(`policy changed to ${hash}`, { logId, position: event.position }, trace, hash);
    } else if (event.payload.case === "scopeChanged") {
      trace?.end();
      // Our scope was (re)defined: its data sources may have changed (OPAL #779), and a
      // scope created after we connected now has a policy to load.
      const { deleted } = event.payload.value;
      const reason = deleted ? "our scope was deleted" : "our scope's definition changed";
      this.options.logger.info({ scope: this.options.config.scopeId, deleted }, deleted ? "scope deleted on the server: keeping what OPA holds" : "scope changed: reloading its data sources");
      const mark = { logId, position: event.position };
      // Nothing to load: the job only takes the event's turn, so its position is acknowledged.
      if (deleted) this.pipeline?.enqueue({ kind: "event", position: event.position, logId, updateId: "", reason, entries: [] });
      else if (this.options.config.dataUpdaterEnabled) {
        if (this.options.config.policyUpdaterEnabled && this.policyHash === "") this.enqueuePolicySync(reason);
        this.dataUpdater?.loadBaseline(reason, mark);
      } else this.enqueuePolicySync(reason, mark);
    }
  }

  /** `announced`: the version a PolicyChanged names; when OPA holds it by the job's turn, only the position moves. */
  private enqueuePolicySync(reason: string, mark?: PositionMark, trace?: UpdateTrace, announced?: string): void {
    const updater = this.policyUpdater;
    if (updater === undefined || this.pipeline === undefined) return;
    const task = async (signal: AbortSignal): Promise<void> => {
      try {
        if (announced !== undefined && announced !== "" && announced === this.policyHash) await updater.skip(signal, mark);
        else await updater.sync(signal, reason, mark, trace, announced);
      } catch (error) {
        if (error instanceof StoreLostStateError) this.rehydrate("a policy write found the client's status document gone from OPA");
        throw error;
      }
    };
    this.pipeline.enqueue({ kind: "policy", position: mark?.position, logId: mark?.logId, updateId: "", reason, entries: [], task, trace });
  }

  /** What OPA says it holds: policy version, position, whether the baseline completed. */
  private async restoreStatus(signal: AbortSignal): Promise<void> {
    // An error reading it (401, 500…) is not an empty OPA: start-up fails rather than overwrite what it holds.
    const snapshot = readStatus(await readStatusDocument(this.store, this.options.logger, signal));
    if (snapshot === undefined) return;
    this.status.restore(snapshot);
    this.health.policyHash = snapshot.policyHash;
    this.lastReceived = snapshot.mark;
    this.baselineIncomplete = snapshot.mark !== undefined && !snapshot.baselineLoaded;
    if (snapshot.mark !== undefined) {
      // What OPA holds is what an earlier run loaded: ready as it was then.
      this.health.baselineLoaded = snapshot.baselineLoaded;
      this.health.policyLoaded = snapshot.ready;
    }
    if (snapshot.lost !== undefined) {
      // An earlier run knew OPA had lost state it did not hold again: it still does not.
      const { lost } = snapshot;
      this.health.storeState.lose(`${lost.reason} (recorded by an earlier run)`, lost.complete ? lost.notHeld : ["/"], lost.at);
      this.baselineIncomplete = snapshot.mark !== undefined;
    }
    if (snapshot.mark !== undefined) this.options.logger.info({ position: snapshot.mark.position.toString(), policy: snapshot.policyHash }, "OPA holds state from an earlier run: resuming from its position");
  }

  private onResult(result: JobResult): void {
    this.metrics.jobDone(result);
    if (result.job.kind === "backup") {
      if (!result.ok && result.job.updateId === STATUS_REFRESH) this.options.logger.warn({ err: result.error }, "could not record in OPA that it holds its state again");
      else if (!result.ok) this.options.logger.error({ err: result.error, path: this.options.config.offline.backupPath }, "store backup failed; the earlier backup is kept");
      return;
    }
    noteJob(this.health.storeState, result);
    if (result.job.kind === "event" || result.job.kind === "policy") this.reporter?.report(result, this.policyHash);
    if (result.job.kind !== "policy") {
      this.dataUpdater?.onResult(result);
      this.settleStoreState();
      return;
    }
    this.settleStoreState();
    const { position } = result.job;
    if (position !== undefined) {
      this.health.appliedPosition = position;
      const traceContext = result.job.trace?.ack(result.ok ? undefined : (result.error ?? "failed"));
      this.stream?.sendAck({ position, updateId: "", status: result.ok ? AckStatus.APPLIED : AckStatus.FAILED, error: result.error ?? "", ...(traceContext === undefined ? {} : { traceContext }) });
    }
    result.job.trace?.end(result.ok ? undefined : result.error);
  }

  /** After a loss, once policy and baseline are back and nothing else is missing: say so in OPA too. */
  private settleStoreState(): void {
    const { health, pipeline } = this;
    if (!health.storeState.settle(health.loaded(), health.dataEnabled) || pipeline === undefined) return;
    this.options.logger.info("OPA holds the client's state again");
    enqueueStatusRefresh(pipeline, this.transactions, this.status, () => this.rehydrate("a write found the client's status document gone from OPA"));
  }

  /** OPA came back empty: forget position and policy so the next session loads everything. */
  private rehydrate(reason: string): void {
    this.options.logger.warn({ reason }, "OPA lost its state: reloading policy and data; not ready until it holds it again");
    // Claim nothing from now on: not ready, not healthy, no position, until OPA holds it again.
    this.health.storeState.lose(reason);
    this.health.appliedPosition = 0n;
    this.lastReceived = undefined;
    this.status.forget();
    this.transactions.forget();
    this.health.policyHash = "";
    this.health.policyLoaded = false;
    this.health.baselineLoaded = false;
    this.pipeline?.clear();
    this.stream?.reconnect();
  }


}

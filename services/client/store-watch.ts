/**
 * Keeping an eye on the policy store: waiting for it at start-up, probing that it answers
 * and still holds our status (an OPA that restarted empty must be reloaded at once), and
 * scheduling offline-mode backups as pipeline jobs (so each sees the store between two
 * transactions). The probe and the backups are lifecycle parts.
 */
import { retry, sleep } from "../common/backoff.js";
import { type Closed, Closing, type Component } from "../common/lifecycle.js";
import type { Logger } from "../common/logger.js";
import type { UpdatePipeline } from "./data/update-pipeline.js";
import type { ClientHealth } from "./health.js";
import { STATUS_PATH } from "./opa-status.js";
import { classifyStoreError, type PolicyStore, PolicyStoreError } from "./policy-store.js";
import type { StoreBackup } from "./store-backup.js";

export async function waitForStore(store: PolicyStore, logger: Logger, signal: AbortSignal): Promise<void> {
  for (let attempt = 1; !(await store.isHealthy(signal)); attempt++) {
    if (attempt === 1 || attempt % 10 === 0) logger.warn("waiting for the policy store to answer");
    await sleep(Math.min(2_000, 100 * attempt), signal);
  }
}

/**
 * The status document OPA holds (undefined: none). A read OPA refuses (401, 403…) fails at
 * once and one it cannot answer (unreachable, 5xx) after a few tries: an error is never
 * taken for an empty OPA, whose documents the client would then overwrite.
 */
export async function readStatusDocument(store: PolicyStore, logger: Logger, signal: AbortSignal): Promise<unknown> {
  try {
    return await retry(() => store.readData(STATUS_PATH, signal), {
      attempts: 8,
      backoff: { initialMs: 100, maxMs: 2_000 },
      signal,
      isRetryable: (error) => !(error instanceof PolicyStoreError) || !error.isRejection,
      onRetry: (error, attempt) => logger.warn({ err: (error as Error).message, attempt }, "could not read the client's status document from OPA; retrying"),
    });
  } catch (error) {
    if (signal.aborted) throw error;
    throw new Error(`could not read the client's status document (${STATUS_PATH}) from OPA: ${(error as Error).message}`, { cause: error });
  }
}

/** The updateId of the job that rewrites the status document once OPA holds its state again. */
export const STATUS_REFRESH = "status-refresh";

export interface LivenessProbeOptions {
  store: PolicyStore;
  health: ClientHealth;
  /** Whether there is a status document to lose (the client wrote it, or found it). */
  written: () => boolean;
  pipeline: UpdatePipeline;
  intervalMs: number;
  logger: Logger;
  /** The store answers but lost our status: it restarted empty. */
  onLost: () => void;
}

/**
 * Asks OPA every interval whether it answers and still holds the client's status. Only
 * "the document is missing" means OPA lost its state; a read it refuses (401/403) or fails
 * is shown in health (and logged once per change), never taken for an empty OPA.
 */
export class LivenessProbe implements Component {
  readonly name = "liveness-probe";
  private readonly closing = new Closing();
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private probing = false;

  constructor(private readonly options: LivenessProbeOptions) {}

  get closed(): Promise<Closed> {
    return this.closing.closed;
  }

  start(signal: AbortSignal): Promise<void> {
    if (this.timer !== undefined || this.closing.isClosed) return Promise.resolve();
    signal.addEventListener("abort", () => this.controller.abort(), { once: true });
    this.timer = setInterval(() => {
      // One probe at a time: a slow OPA must not pile up requests.
      if (this.probing) return;
      this.probing = true;
      void this.probe().finally(() => {
        this.probing = false;
      });
    }, this.options.intervalMs);
    this.timer.unref();
    return Promise.resolve();
  }

  stop(): Promise<void> {
    clearInterval(this.timer);
    this.controller.abort();
    this.closing.stopped();
    return Promise.resolve();
  }

  /** One look at OPA: whether it answers, lets us read, and still holds our status. */
  async probe(): Promise<void> {
    const { store, health, pipeline } = this.options;
    const signal = this.controller.signal;
    health.engineReachable = await store.isHealthy(signal);
    if (signal.aborted) return;
    if (!health.engineReachable) {
      this.problem(undefined);
      return;
    }
    // Only between transactions, and only once something was written to lose.
    if (!this.options.written() || pipeline.pending > 0) {
      this.problem(undefined);
      return;
    }
    let exists: boolean;
    try {
      exists = await store.exists(STATUS_PATH, signal);
    } catch (error) {
      if (signal.aborted) return;
      const problem = classifyStoreError(error);
      // An outage between the two requests: the next probe's health check says so.
      if (problem.kind === "unavailable") health.engineReachable = false;
      this.problem(problem.kind === "unavailable" ? undefined : `OPA does not let the client check its state: ${problem.message}`);
      return;
    }
    this.problem(undefined);
    if (!exists) this.options.onLost();
  }

  private problem(message: string | undefined): void {
    const { health, logger } = this.options;
    if (message === health.engineProblem) return;
    if (message !== undefined) logger.error({ problem: message }, "OPA refuses the liveness probe's read; not healthy until it answers");
    else if (health.engineProblem !== undefined) logger.info("OPA answers the liveness probe again");
    health.engineProblem = message;
  }
}

/**
 * Offline mode's backups, taken as pipeline jobs (each sees the store between two
 * transactions), and one last one when the client stops (the pipeline has stopped by then:
 * this part starts before it, so it stops after it).
 */
export class BackupSchedule implements Component {
  readonly name = "store-backup";
  private readonly closing = new Closing();
  private timer: NodeJS.Timeout | undefined;
  private queuedAt: number | undefined;
  private stopping: Promise<void> | undefined;

  constructor(
    private readonly backup: StoreBackup,
    private readonly pipeline: UpdatePipeline,
    private readonly intervalMs: number,
    private readonly health: ClientHealth,
    private readonly logger: Logger,
  ) {}

  get closed(): Promise<Closed> {
    return this.closing.closed;
  }

  start(): Promise<void> {
    if (this.timer !== undefined || this.stopping !== undefined) return Promise.resolve();
    this.timer = setInterval(() => this.schedule(), this.intervalMs);
    this.timer.unref();
    return Promise.resolve();
  }

  stop(): Promise<void> {
    this.stopping ??= this.finalSave().finally(() => this.closing.stopped());
    return this.stopping;
  }

  private schedule(): void {
    // One backup waiting is enough (a resync may have dropped it: then queue another).
    if (this.queuedAt !== undefined && Date.now() - this.queuedAt < 3 * this.intervalMs) return;
    this.queuedAt = Date.now();
    const task = async (signal: AbortSignal): Promise<void> => {
      this.queuedAt = undefined;
      await this.backup.save(signal);
    };
    this.pipeline.enqueue({ kind: "backup", updateId: "", reason: "store backup", entries: [], task });
  }

  /** A last backup, from the state the stopped pipeline left (nothing writes now). */
  private async finalSave(): Promise<void> {
    clearInterval(this.timer);
    if (!this.health.engineReachable) return;
    try {
      await this.backup.save();
    } catch (error) {
      // Shown in health and metrics by the backup itself; the earlier backup is kept.
      this.logger.warn({ err: (error as Error).message }, "final store backup failed");
    }
  }
}

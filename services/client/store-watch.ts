/**
 * Keeping an eye on the policy store: waiting for it at start-up, probing that it answers
 * and still holds our status (an OPA that restarted empty must be reloaded at once), and
 * scheduling offline-mode backups as pipeline jobs (so each sees the store between two
 * transactions).
 */
import { retry, sleep } from "../common/backoff.js";
import type { Logger } from "../common/logger.js";
import { type DataTransactions, StoreLostStateError } from "./data/data-transaction.js";
import type { UpdatePipeline } from "./data/update-pipeline.js";
import type { ClientHealth } from "./health.js";
import { STATUS_PATH, type StatusDocument } from "./opa-status.js";
import { type PolicyStore, PolicyStoreError } from "./policy-store.js";
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

/**
 * Rewrites the status document in its turn (between transactions, with the position it
 * holds): the last transaction wrote it while the state was not yet back.
 */
export function enqueueStatusRefresh(pipeline: UpdatePipeline, transactions: DataTransactions, status: StatusDocument, onLost: () => void): void {
  const task = async (signal: AbortSignal): Promise<void> => {
    if (!status.written) return; // a loss in between: the reload writes it
    try {
      await transactions.commit([], status.render(status.mark), signal, true);
    } catch (error) {
      if (error instanceof StoreLostStateError) onLost();
      throw error;
    }
  };
  pipeline.enqueue({ kind: "backup", updateId: STATUS_REFRESH, reason: "OPA holds its state again", entries: [], task });
}

export interface LivenessProbeOptions {
  store: PolicyStore;
  health: ClientHealth;
  status: StatusDocument;
  pipeline: UpdatePipeline;
  intervalMs: number;
  /** The store answers but lost our status: it restarted empty. */
  onLost: () => void;
  signal: AbortSignal;
}

export function startLivenessProbe(options: LivenessProbeOptions): NodeJS.Timeout {
  const { store, health, status, pipeline, signal } = options;
  const timer = setInterval(() => {
    void (async () => {
      health.engineReachable = await store.isHealthy(signal);
      // Only between transactions, and only once something was written to lose.
      if (!health.engineReachable || !status.written || pipeline.pending > 0) return;
      if (!(await store.exists(STATUS_PATH, signal).catch(() => true))) options.onLost();
    })();
  }, options.intervalMs);
  timer.unref();
  return timer;
}

export function startBackups(backup: StoreBackup, pipeline: UpdatePipeline, intervalMs: number): NodeJS.Timeout {
  let queuedAt: number | undefined;
  const timer = setInterval(() => {
    // One backup waiting is enough (a resync may have dropped it: then queue another).
    if (queuedAt !== undefined && Date.now() - queuedAt < 3 * intervalMs) return;
    queuedAt = Date.now();
    const task = async (signal: AbortSignal): Promise<void> => {
      queuedAt = undefined;
      await backup.save(signal);
    };
    pipeline.enqueue({ kind: "backup", updateId: "", reason: "store backup", entries: [], task });
  }, intervalMs);
  timer.unref();
  return timer;
}

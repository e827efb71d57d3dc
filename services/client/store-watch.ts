/**
 * Keeping an eye on the policy store: waiting for it at start-up, probing that it answers
 * and still holds our status (an OPA that restarted empty must be reloaded at once), and
 * scheduling offline-mode backups as pipeline jobs (so each sees the store between two
 * transactions).
 */
import { sleep } from "../common/backoff.js";
import type { Logger } from "../common/logger.js";
import type { UpdatePipeline } from "./data/update-pipeline.js";
import type { ClientHealth } from "./health.js";
import { STATUS_PATH, type StatusDocument } from "./opa-status.js";
import type { PolicyStore } from "./policy-store.js";
import type { StoreBackup } from "./store-backup.js";

export async function waitForStore(store: PolicyStore, logger: Logger, signal: AbortSignal): Promise<void> {
  for (let attempt = 1; !(await store.isHealthy(signal)); attempt++) {
    if (attempt === 1 || attempt % 10 === 0) logger.warn("waiting for the policy store to answer");
    await sleep(Math.min(2_000, 100 * attempt), signal);
  }
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

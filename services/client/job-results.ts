/**
 * What follows a written job, in one place: metrics, what OPA now holds (lost-state
 * tracking), OPAL's update reports, data health, and the ACK (the sync state builds it).
 */
import type { Logger } from "../common/logger.js";
import type { DataUpdater } from "./data/data-updater.js";
import type { JobResult } from "./data/update-pipeline.js";
import type { ClientHealth } from "./health.js";
import type { ClientMetrics } from "./metrics.js";
import type { UpdateReporter } from "./reporter.js";
import { noteJob } from "./store-state.js";
import type { StoreRecovery } from "./store-recovery.js";
import { STATUS_REFRESH } from "./store-watch.js";
import type { SyncState } from "./sync-state.js";

export interface JobResultsOptions {
  health: ClientHealth;
  metrics: ClientMetrics;
  reporter: UpdateReporter;
  dataUpdater: DataUpdater;
  recovery: StoreRecovery;
  sync: SyncState;
  logger: Logger;
  /** Offline mode's backup file, for its errors. */
  backupPath: string;
  /** Told how each update ended: a failed one makes the client stale until one succeeds. */
  updateSettled?: (error: string | undefined) => void;
}

export function jobResults(options: JobResultsOptions): (result: JobResult) => void {
  const { health, logger, sync } = options;
  return (result) => {
    options.metrics.jobDone(result);
    const { job } = result;
    if (job.kind === "backup") {
      // A failed backup is in health and metrics already (the backup records it); a failed
      // status refresh leaves OPA's document saying the state is not held (the safe side).
      if (!result.ok && job.updateId === STATUS_REFRESH) logger.warn({ err: result.error }, "could not record in OPA that it holds its state again");
      else if (!result.ok) logger.error({ err: result.error, path: options.backupPath }, "store backup failed; the earlier backup is kept");
      return;
    }
    noteJob(health.storeState, result);
    if (job.kind === "event" || job.kind === "policy") options.reporter.report(result, sync.policyHash);
    if (job.kind !== "policy") options.dataUpdater.onResult(result);
    if (job.kind === "event" || job.kind === "baseline" || job.kind === "policy") {
      const errors = [result.error, ...result.entries.map((entry) => entry.error)].filter((failure) => failure !== undefined);
      options.updateSettled?.(result.ok ? undefined : errors.join("; ") || "failed");
    }
    options.recovery.settle();
    sync.acknowledge(result);
  };
}

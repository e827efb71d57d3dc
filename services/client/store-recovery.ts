/**
 * OPA's state lost and found again. At start-up: an empty OPA is loaded from the offline
 * backup (when there is one), then what OPA's status document says is where the client
 * resumes. While running: OPA found without our status (a restarted inline OPA, the
 * liveness probe, a write) means everything is reloaded, claiming nothing meanwhile; once
 * policy and baseline are back and nothing else is missing, OPA's status says so too.
 */
import { type Closed, Closing, type Component } from "../common/lifecycle.js";
import type { Logger } from "../common/logger.js";
import type { UpdatePipeline } from "./data/update-pipeline.js";
import type { ClientHealth } from "./health.js";
import { readStatus, STATUS_PATH } from "./opa-status.js";
import type { PolicyStore } from "./policy-store.js";
import type { StoreBackup } from "./store-backup.js";
import { readStatusDocument, STATUS_REFRESH } from "./store-watch.js";
import type { SyncState } from "./sync-state.js";

export interface StoreRecoveryOptions {
  store: PolicyStore;
  health: ClientHealth;
  sync: SyncState;
  pipeline: UpdatePipeline;
  /** Offline mode's backup; undefined when off. */
  backup: StoreBackup | undefined;
  logger: Logger;
  /** Drops the stream: the next one starts fresh (no resume point). */
  reconnect: () => void;
}

/** A lifecycle part whose start reads (and perhaps restores) what OPA holds; it holds nothing to stop. */
export class StoreRecovery implements Component {
  readonly name = "store-recovery";
  private readonly closing = new Closing();

  constructor(private readonly options: StoreRecoveryOptions) {}

  get closed(): Promise<Closed> {
    return this.closing.closed;
  }

  async start(signal: AbortSignal): Promise<void> {
    const { backup, health, store } = this.options;
    // An empty store (a fresh or restarted OPA) starts from the backup, server or not. A
    // read OPA refuses or fails is not an empty store: start-up fails rather than overwrite it.
    if (backup !== undefined && !(await store.exists(STATUS_PATH, signal))) {
      const restored = await backup.restore(signal);
      // Not used: claim nothing until the server's policy and baseline are loaded.
      if (restored.problem !== undefined) health.storeState.lose(restored.problem);
    }
    await this.restoreStatus(signal);
  }

  stop(): Promise<void> {
    this.closing.stopped();
    return Promise.resolve();
  }

  /** OPA came back empty: forget position and policy so the next session loads everything. */
  lost(reason: string): void {
    const { health, logger, pipeline, sync } = this.options;
    logger.warn({ reason }, "OPA lost its state: reloading policy and data; not ready until it holds it again");
    // Claim nothing from now on: not ready, not healthy, no position, until OPA holds it again.
    health.storeState.lose(reason);
    health.appliedPosition = 0n;
    sync.forget();
    health.policyHash = "";
    health.policyLoaded = false;
    health.baselineLoaded = false;
    pipeline.clear();
    this.options.reconnect();
  }

  /** After a loss, once policy and baseline are back and nothing else is missing: say so in OPA too. */
  settle(): void {
    const { health, logger, pipeline, sync } = this.options;
    if (!health.storeState.settle(health.loaded(), health.dataEnabled)) return;
    logger.info("OPA holds the client's state again");
    // In its turn, between transactions, at the position OPA holds.
    pipeline.enqueue({ kind: "backup", updateId: STATUS_REFRESH, reason: "OPA holds its state again", entries: [], task: (signal) => sync.refresh(signal) });
  }

  /** What OPA says it holds: policy version, position, whether the baseline completed. */
  private async restoreStatus(signal: AbortSignal): Promise<void> {
    const { health, logger, store, sync } = this.options;
    const snapshot = readStatus(await readStatusDocument(store, logger, signal));
    if (snapshot === undefined) return;
    sync.restore(snapshot);
    health.policyHash = snapshot.policyHash;
    if (snapshot.mark !== undefined) {
      // What OPA holds is what an earlier run loaded: ready as it was then.
      health.baselineLoaded = snapshot.baselineLoaded;
      health.policyLoaded = snapshot.ready;
    }
    if (snapshot.lost !== undefined) {
      // An earlier run knew OPA had lost state it did not hold again: it still does not.
      const { lost } = snapshot;
      health.storeState.lose(`${lost.reason} (recorded by an earlier run)`, lost.complete ? lost.notHeld : ["/"], lost.at);
    }
    if (snapshot.mark !== undefined) logger.info({ position: snapshot.mark.position.toString(), policy: snapshot.policyHash }, "OPA holds state from an earlier run: resuming from its position");
  }
}

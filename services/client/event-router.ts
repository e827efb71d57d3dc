/**
 * What the client does with what its stream delivers: a Welcome or a Resync (load the
 * baseline, or resume), a data update (a data job), a policy change (a policy job), a
 * scope change (reload what the scope defines). Every job goes into the one update
 * pipeline, in log order; the sync state moves the resume point as each arrives.
 */
import type { Resync, SnapshotPart, Welcome } from "../../gen/opal/mesh/v1/distributor_pb.js";
import { type Event, type PolicyChanged, RolloutStage } from "../../gen/opal/mesh/v1/event_pb.js";
import type { Logger } from "../common/logger.js";
import { isCanary } from "../common/rollout/canary-selector.js";
import type { Tracing } from "../common/telemetry/tracing.js";
import type { DataUpdater } from "./data/data-updater.js";
import type { UpdatePipeline } from "./data/update-pipeline.js";
import type { PositionMark } from "./opa-status.js";
import type { PolicyUpdater } from "./policy/policy-updater.js";
import { SnapshotCollector, SnapshotLostError } from "./snapshot-collector.js";
import type { StreamHandlers } from "./stream-session.js";
import type { SyncState } from "./sync-state.js";
import { UpdateTrace } from "./update-trace.js";

export interface EventRouterOptions {
  clientId: string;
  /** OPAL_MESH_CLIENT_LABELS: whether this client is a staged rollout's canary. */
  labels?: Readonly<Record<string, string>>;
  scope: string;
  dataEnabled: boolean;
  policyEnabled: boolean;
  sync: SyncState;
  pipeline: UpdatePipeline;
  dataUpdater: DataUpdater;
  policyUpdater: PolicyUpdater;
  tracing: Tracing;
  logger: Logger;
  /** The stream's state, for health and metrics. */
  onConnectionChange: (connected: boolean, error?: string) => void;
  /** A new session: the distributor knows nothing of us yet. */
  onSession: () => void;
}

export class EventRouter implements StreamHandlers {
  /** The snapshot the session's Welcome or Resync announced, while its parts arrive. */
  private snapshot: { collector: SnapshotCollector; mark: PositionMark } | undefined;

  constructor(private readonly options: EventRouterOptions) {}

  onConnectionChange(connected: boolean, error?: string): void {
    if (!connected) this.snapshotLost(`the stream ended before the snapshot was complete${error === undefined ? "" : ` (${error})`}`);
    this.options.onConnectionChange(connected, error);
  }

  onWelcome(welcome: Welcome, resumed: boolean): void {
    const { logger, sync } = this.options;
    this.options.onSession();
    const next = sync.welcomed(welcome, resumed);
    if (next.load === "all") {
      this.loadBaseline("Initial load", next.mark, welcome.snapshotFollows ? this.expectSnapshot(next.mark) : undefined);
      return;
    }
    logger.info({ position: sync.resumePoint?.position.toString() }, "resumed: the distributor replays what was missed");
    if (next.load === "data") this.options.dataUpdater.loadBaseline("baseline was not complete");
  }

  onResync(resync: Resync): void {
    const mark = this.options.sync.resynced(resync);
    this.options.logger.warn({ reason: resync.reason }, "resync: reloading policy and data");
    this.loadBaseline(`Resync: ${resync.reason}`, mark, resync.snapshotFollows ? this.expectSnapshot(mark) : undefined);
  }

  onSnapshot(part: SnapshotPart): void {
    const pending = this.snapshot;
    if (pending === undefined) {
      this.options.logger.warn({ position: part.position.toString() }, "a snapshot part nobody announced; ignored");
      return;
    }
    if (!pending.collector.add(part)) {
      // A part that does not fit failed the collector: the baseline job fails, the next session starts afresh.
      if (pending.collector.complete) this.snapshot = undefined;
      return;
    }
    this.snapshot = undefined;
    this.options.sync.snapshotReceived(pending.mark);
    void pending.collector.done.then((received) => {
      if (received.incomplete !== undefined) this.options.logger.warn({ position: received.position.toString(), reason: received.incomplete }, "the server's snapshot misses events its log no longer holds");
    }, () => undefined);
  }

  private expectSnapshot(mark: PositionMark): SnapshotCollector {
    this.snapshotLost("a new snapshot replaces it");
    const collector = new SnapshotCollector(mark.position);
    this.snapshot = { collector, mark };
    return collector;
  }

  private snapshotLost(reason: string): void {
    this.snapshot?.collector.fail(new SnapshotLostError(reason));
    this.snapshot = undefined;
  }

  onEvent(event: Event): void {
    const mark = this.options.sync.eventReceived(event);
    const trace = UpdateTrace.forEvent(this.options.tracing, event, this.options.clientId);
    switch (event.payload.case) {
      case "dataUpdate":
        this.options.dataUpdater.onEvent(event, mark.logId, trace);
        return;
      case "policyChanged": {
        // Announcing what OPA already holds (a new publisher re-announces): only the position
        // moves. Decided when the job runs: a baseline queued ahead of it may load that version.
        // A staged rollout's step names the version meant for this client (canary or not).
        const target = targetVersion(event.payload.value, this.options.clientId, this.options.labels ?? {});
        this.syncPolicy(`policy changed to ${target}${event.payload.value.rollout === undefined ? "" : ` (rollout ${rolloutStageName(event.payload.value.rollout.stage)})`}`, mark, trace, target, event.payload.value.rollout === undefined ? undefined : target);
        return;
      }
      case "scopeChanged":
        trace?.end();
        this.onScopeChanged(event.payload.value.deleted, mark);
        return;
      default:
        // An event this client does not know (a newer server): nothing to apply.
        trace?.end();
    }
  }

  /**
   * Policy first, then every baseline data source, ahead of the events that follow; the
   * baseline's transaction moves OPA's position to `mark`, the head it was taken at.
   */
  loadBaseline(reason: string, mark: PositionMark, snapshot?: SnapshotCollector): void {
    const { dataEnabled, policyEnabled } = this.options;
    this.options.pipeline.clear();
    if (policyEnabled) this.syncPolicy(reason, dataEnabled ? undefined : mark, undefined, undefined, undefined, snapshot);
    if (dataEnabled) this.options.dataUpdater.loadBaseline(reason, mark, snapshot?.done);
  }

  /**
   * `announced`: the version a PolicyChanged names; when OPA holds it by the job's turn, only
   * the position moves. `version`: asked for by its hash (a rollout's step names it).
   */
  syncPolicy(reason: string, mark?: PositionMark, trace?: UpdateTrace, announced?: string, version?: string, snapshot?: SnapshotCollector): void {
    const { policyUpdater, sync } = this.options;
    const task = async (signal: AbortSignal): Promise<void> => {
      // A fresh or resynced client learns from the snapshot whether a rollout's canary stage
      // is under way, and so which version is its own (the server's current one is the stable).
      const received = snapshot === undefined ? undefined : await snapshot.done.catch(() => undefined);
      const wanted = received?.rollout === undefined ? version : targetVersion({ hash: received.policyHash, rollout: received.rollout }, this.options.clientId, this.options.labels ?? {});
      if (announced !== undefined && announced !== "" && announced === sync.policyHash) await policyUpdater.skip(signal, mark);
      else await policyUpdater.sync(signal, reason, mark, trace, announced, wanted);
    };
    this.options.pipeline.enqueue({ kind: "policy", position: mark?.position, logId: mark?.logId, updateId: "", reason, entries: [], task, trace });
  }

  /** Our scope was (re)defined: its data sources may have changed (OPAL #779), and a scope created after we connected now has a policy to load. */
  private onScopeChanged(deleted: boolean, mark: PositionMark): void {
    const { dataEnabled, policyEnabled, sync } = this.options;
    const reason = deleted ? "our scope was deleted" : "our scope's definition changed";
    this.options.logger.info({ scope: this.options.scope, deleted }, deleted ? "scope deleted on the server: keeping what OPA holds" : "scope changed: reloading its data sources");
    // Nothing to load: the job only takes the event's turn, so its position is acknowledged.
    if (deleted) this.options.pipeline.enqueue({ kind: "event", position: mark.position, logId: mark.logId, updateId: "", reason, entries: [] });
    else if (dataEnabled) {
      if (policyEnabled && sync.policyHash === "") this.syncPolicy(reason);
      this.options.dataUpdater.loadBaseline(reason, mark);
    } else this.syncPolicy(reason, mark);
  }
}

/** The version a PolicyChanged means for this client: a rollout's canary stage splits the fleet. */
export function targetVersion(change: Pick<PolicyChanged, "hash" | "rollout">, clientId: string, labels: Readonly<Record<string, string>>): string {
  const rollout = change.rollout;
  if (rollout === undefined || rollout.stage !== RolloutStage.CANARY) return change.hash;
  return isCanary({ labels: rollout.canaryLabels, percent: rollout.canaryPercent }, clientId, labels) ? change.hash : rollout.stableHash;
}

function rolloutStageName(stage: RolloutStage): string {
  return stage === RolloutStage.CANARY ? "canary" : stage === RolloutStage.PROMOTED ? "promoted" : stage === RolloutStage.ROLLED_BACK ? "rolled back" : "step";
}

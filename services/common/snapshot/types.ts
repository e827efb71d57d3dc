/**
 * The snapshot of the log (issue 13): what an ordered replay of every event through a
 * position leaves at each path opal-mesh writes, per scope, so a client that joins late,
 * comes back with an empty OPA or is resynced ends exactly where a connected one is.
 *
 * It is a compacted log, not a document: the shortest subsequence of the log's data
 * entries whose replay gives what the whole replay gives. An entry is dropped once a later
 * PUT or DELETE replaces everything it wrote for every client that applied it; writes into
 * an inline PUT's document are folded into that document where the result is certain. What
 * cannot be decided safely is kept as an entry, so replaying the snapshot is exact by
 * construction (docs/architecture.md, "The snapshot").
 */
import type { Event, PolicyRollout } from "../../../gen/opal/mesh/v1/event_pb.js";
import type { SnapshotItem, SnapshotScope } from "../../../gen/opal/mesh/v1/snapshot_pb.js";

export type { SnapshotItem, SnapshotScope };

/** What a client of one scope with some topics replays, at one position. */
export interface ScopeView {
  scope: string;
  /** Every event through this position is folded in. */
  position: bigint;
  /** Entries from before the scope's last redefinition: written before the baseline. */
  beforeBaseline: readonly SnapshotItem[];
  /** The entries after it (all of them when the scope was never redefined): on top of the baseline. */
  afterBaseline: readonly SnapshotItem[];
  /** The policy version the log last announced for the scope; "" when none. */
  policyHash: string;
  /** A staged rollout's canary stage under way for the scope (which version is whose). */
  rollout?: PolicyRollout | undefined;
}

export interface SnapshotStats {
  position: bigint;
  /** Items held, over every scope. */
  entries: number;
  /** Their entries' size: JSON bytes of inline data, plus URL, config and path. */
  bytes: number;
  scopes: number;
}

/** Everything a snapshot holds, in replay order: for checkpoints and the broadcaster → distributor transfer. */
export interface SnapshotExport {
  position: bigint;
  scopes: SnapshotScope[];
  items: SnapshotItem[];
}

/** The fold; one per log reader (the broadcaster's log, each distributor's fan-out). */
export interface Snapshot {
  readonly position: bigint;
  readonly stats: SnapshotStats;
  /**
   * Folds an event the log holds at `event.position`. Events at or below the snapshot's
   * position are ignored (a replay that overlaps what is folded already), so is a
   * malformed one (no payload). Positions may skip (events of other kinds, gaps).
   */
  fold(event: Event): void;
  /** At most how many bytes folding `events` would add (the limit is checked before an append). */
  growthOf(events: readonly Event[]): number;
  /** The scope's policy version and staged-rollout canary stage, without its entries (the dashboard's view). */
  policyOf(scope: string): { policyHash: string; rollout: PolicyRollout | undefined };
  /**
   * What a client of `scope` subscribed to `topics` (plain topic names, hierarchical as
   * everywhere: "a" covers "a/b") replays. A copy: folding later events does not change it,
   * so it can be streamed at the client's pace.
   */
  view(scope: string, topics: readonly string[]): ScopeView;
  export(): SnapshotExport;
  /** Replaces everything with an export (a checkpoint, or the broadcaster's snapshot). */
  restore(exported: SnapshotExport): void;
  /** Empties it at `position` (a new log starts). */
  reset(position: bigint): void;
}

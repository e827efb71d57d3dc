/**
 * The snapshot of the log a fresh or resynced session receives after its Welcome or
 * Resync, gathered from its parts. The baseline job waits for it and writes it with the
 * baseline in one transaction: the entries from before the scope's last redefinition, the
 * baseline, then the entries after it (docs/architecture.md, "The snapshot").
 */
import type { DataSourceEntry } from "../../gen/opal/mesh/v1/data_pb.js";
import type { SnapshotPart } from "../../gen/opal/mesh/v1/distributor_pb.js";
import type { PolicyRollout } from "../../gen/opal/mesh/v1/event_pb.js";

export interface ReceivedSnapshot {
  position: bigint;
  beforeBaseline: DataSourceEntry[];
  afterBaseline: DataSourceEntry[];
  policyHash: string;
  /** A staged rollout's canary stage under way: which version is this client's. */
  rollout: PolicyRollout | undefined;
  /** The distributor's snapshot misses events its log no longer holds; why. */
  incomplete: string | undefined;
}

/** The stream ended before the last part: the next session sends the snapshot again. */
export class SnapshotLostError extends Error {
  override readonly name = "SnapshotLostError";
}

export class SnapshotCollector {
  readonly done: Promise<ReceivedSnapshot>;
  private readonly received: ReceivedSnapshot;
  private settle: { resolve: (snapshot: ReceivedSnapshot) => void; reject: (error: Error) => void } | undefined;

  constructor(readonly position: bigint) {
    this.received = { position, beforeBaseline: [], afterBaseline: [], policyHash: "", rollout: undefined, incomplete: undefined };
    this.done = new Promise((resolve, reject) => {
      this.settle = { resolve, reject };
    });
    // Whoever waits handles the failure; this keeps a snapshot nobody waited for from being unhandled.
    this.done.catch(() => undefined);
  }

  /** Settled: every part arrived, or it failed. */
  get complete(): boolean {
    return this.settle === undefined;
  }

  /** Adds a part; true once the last one arrived. A part for another position is a protocol error (it fails the collector). */
  add(part: SnapshotPart): boolean {
    if (this.settle === undefined) return false;
    if (part.position !== this.position) {
      this.fail(new Error(`the server sent a snapshot part at position ${part.position} for a session starting at ${this.position}`));
      return false;
    }
    this.received.beforeBaseline.push(...part.beforeBaseline);
    this.received.afterBaseline.push(...part.afterBaseline);
    if (!part.last) return false;
    this.received.policyHash = part.policyHash;
    this.received.rollout = part.rollout;
    this.received.incomplete = part.incomplete === "" ? undefined : part.incomplete;
    this.settle.resolve(this.received);
    this.settle = undefined;
    return true;
  }

  fail(error: Error): void {
    this.settle?.reject(error);
    this.settle = undefined;
  }
}

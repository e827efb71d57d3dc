/** What the broadcaster needs from a log backend: the in-memory log, or Kafka. */
import type { Event } from "../../gen/opal/mesh/v1/event_pb.js";
import type { Snapshot } from "../common/snapshot/types.js";

export interface LogHead {
  /** Position of the newest event; 0 when the log is empty. */
  headPosition: bigint;
  /** Position of the oldest retained event. */
  firstRetainedPosition: bigint;
  /** Identifies the log: positions from another log mean nothing here. */
  logId: string;
}

export interface EventLog {
  head(): LogHead;
  /** Appends in order; returns the positions. Events must have a payload and topics. */
  append(events: readonly Event[]): Promise<bigint[]>;
  /**
   * Every event after `after` in order, then live ones, until the signal aborts. Throws
   * LogTruncatedError when `after` (or the reader, falling behind) leaves the retained range.
   */
  read(after: bigint, signal: AbortSignal): AsyncGenerator<Event>;
  /** The log folded through its head (issue 13): kept up to date as events are appended or read. */
  readonly snapshot: Snapshot;
  /** Why the snapshot misses events (the log lost them before it could fold them); undefined when complete. */
  snapshotProblem(): string | undefined;
}

export class LogTruncatedError extends Error {
  override readonly name = "LogTruncatedError";
  constructor(
    readonly requestedAfter: bigint,
    readonly firstRetained: bigint,
  ) {
    super(`position ${requestedAfter} is no longer retained; the oldest retained position is ${firstRetained}`);
  }
}

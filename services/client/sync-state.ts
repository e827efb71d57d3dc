/**
 * The client's sync state, in one place (OPA's bundle plugin: the cursor moves once, after
 * a successful apply):
 *
 * - the resume point: the last position received from the distributor, which the next
 *   Hello resumes from (moved by Welcome, Resync and each event);
 * - the durable position: the one OPA's status document holds, moved only by the
 *   transaction that gets OPA there;
 * - every write of that status document, for data and policy alike, through the data
 *   transactions (a `replace` that finds it gone means OPA lost its state);
 * - the ACKs: one `acknowledge(result)` for every job that took a log position's turn.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { type AckSchema, AckStatus, type Resync, type Welcome } from "../../gen/opal/mesh/v1/distributor_pb.js";
import type { Event } from "../../gen/opal/mesh/v1/event_pb.js";
import { type DataTransactions, type EntryWrite, StoreLostStateError } from "./data/data-transaction.js";
import type { JobResult } from "./data/update-pipeline.js";
import type { ClientHealth, Transaction } from "./health.js";
import { type PositionMark, type StatusSnapshot, StatusDocument } from "./opa-status.js";

export type AckFields = MessageInitShape<typeof AckSchema>;

/** What a Welcome asks of the client: nothing (resumed), the data baseline again, or everything at the head. */
export type WelcomeLoad = { load: "none" } | { load: "data" } | { load: "all"; mark: PositionMark };

/** How a job's writes are recorded in the status document written with them. */
export interface StatusRecord {
  /** The position the transaction moves OPA to; the one it holds when absent. */
  mark?: PositionMark | undefined;
  /** The data transaction it is written with (counted as the last one, and in `healthy`). */
  transaction?: Transaction;
  /** A baseline's own transaction says whether the baseline is now loaded. */
  baselineLoaded?: boolean;
}

/** What the data and policy writers see of the sync state. */
export interface StatusWriter {
  readonly position: PositionMark | undefined;
  readonly policyHash: string;
  readonly rootDataKeys: readonly string[];
  /** The status document is in OPA (written, or found there). */
  readonly written: boolean;
  /** Commits `writes` and the status document in one transaction; the position moves once it committed. */
  commit(writes: readonly EntryWrite[], signal: AbortSignal, record?: StatusRecord): Promise<void>;
  /** A policy bundle was applied: its version goes into the next status write. */
  policyApplied(hash: string, rootDataKeys: readonly string[]): void;
}

export interface SyncStateOptions {
  health: ClientHealth;
  clientId: string;
  transactions: DataTransactions;
  /** Sends an ACK up the current stream (dropped while disconnected: the next Hello resumes from what OPA holds). */
  sendAck: (ack: AckFields) => void;
  /** A write found OPA without the client's status document: it lost its state. */
  onLost: (reason: string) => void;
  /** Told where OPA is and where the log's head is, for freshness (freshness.ts). */
  positions?: { committed(mark: PositionMark): void; forgotten(): void; headSeen(position: bigint): void };
}

export class SyncState implements StatusWriter {
  private received: PositionMark | undefined;
  /** OPA held a position but an unfinished baseline: load it again after resuming. */
  private baselineIncomplete = false;
  private readonly status: StatusDocument;

  constructor(private readonly options: SyncStateOptions) {
    this.status = new StatusDocument(options.health, options.clientId);
  }

  /** Where the next stream resumes from; undefined: start fresh (baseline). */
  get resumePoint(): PositionMark | undefined {
    return this.received;
  }

  get position(): PositionMark | undefined {
    return this.status.mark;
  }

  get policyHash(): string {
    return this.status.policyHash;
  }

  get rootDataKeys(): readonly string[] {
    return this.status.rootDataKeys;
  }

  get written(): boolean {
    return this.status.written;
  }

  /** What OPA's status document said at start-up: resume from its position. */
  restore(snapshot: StatusSnapshot): void {
    this.status.restore(snapshot);
    this.received = snapshot.mark;
    if (snapshot.mark !== undefined) this.options.positions?.committed(snapshot.mark);
    // An earlier run that knew OPA had lost state did not finish loading it again either.
    this.baselineIncomplete = snapshot.mark !== undefined && (!snapshot.baselineLoaded || snapshot.lost !== undefined);
  }

  /** OPA lost its state: no position, no policy, no resume point; the next stream starts fresh. */
  forget(): void {
    this.received = undefined;
    this.status.forget();
    this.options.transactions.forget();
    this.options.positions?.forgotten();
  }

  /**
   * A Welcome. Resumed: the distributor replays what was missed (and an unfinished baseline
   * loads again). Fresh: subscribed first (events after the head are on their way), then
   * everything is loaded at the head, so nothing published meanwhile is lost.
   */
  welcomed(welcome: Welcome, resumed: boolean): WelcomeLoad {
    this.options.positions?.headSeen(welcome.headPosition);
    if (resumed) {
      const load: WelcomeLoad = this.baselineIncomplete ? { load: "data" } : { load: "none" };
      this.baselineIncomplete = false;
      return load;
    }
    const mark = { logId: welcome.logId, position: welcome.headPosition };
    // With a snapshot to come, the head is the resume point only once all of it arrived:
    // a stream cut before that starts fresh again, and gets the snapshot again.
    if (!welcome.snapshotFollows) this.received = mark;
    return { load: "all", mark };
  }

  /** The snapshot at `mark` arrived whole: the next stream resumes from there. */
  snapshotReceived(mark: PositionMark): void {
    this.received = mark;
  }

  /** An event arrived: its position is the resume point now (it is queued in order). */
  eventReceived(event: Event): PositionMark {
    this.received = { logId: this.received?.logId ?? "", position: event.position };
    this.options.positions?.headSeen(event.position);
    return this.received;
  }

  /** The distributor cannot replay from where we were: everything again, at its head. */
  resynced(resync: Resync): PositionMark {
    const mark = { logId: this.received?.logId ?? "", position: resync.headPosition };
    this.options.positions?.headSeen(resync.headPosition);
    if (!resync.snapshotFollows) this.received = mark;
    return mark;
  }

  async commit(writes: readonly EntryWrite[], signal: AbortSignal, record: StatusRecord = {}): Promise<void> {
    const mark = record.mark ?? this.status.mark;
    const document = this.status.render(mark, record.transaction, record.baselineLoaded);
    try {
      await this.options.transactions.commit(writes, document, signal, this.status.written);
    } catch (error) {
      if (error instanceof StoreLostStateError) this.options.onLost("a write found the client's status document gone from OPA");
      throw error;
    }
    this.status.committed(mark);
    if (mark !== undefined) this.options.positions?.committed(mark);
  }

  policyApplied(hash: string, rootDataKeys: readonly string[]): void {
    this.status.policyApplied(hash, rootDataKeys);
    this.options.health.policyHash = hash;
  }

  /** Rewrites the status document at the position it holds (OPA holds its state again). */
  async refresh(signal: AbortSignal): Promise<void> {
    if (!this.status.written) return; // a loss in between: the reload writes it
    await this.commit([], signal);
  }

  /**
   * The ACK for a job that took a log position's turn (an event, a baseline at its head, a
   * policy change), with the send-ack span; every job's trace ends here.
   */
  acknowledge(result: JobResult): void {
    const { job } = result;
    const error = [result.error, ...result.entries.map((entry) => entry.error)].filter((failure) => failure !== undefined).join("; ");
    if (job.position !== undefined && (job.kind === "event" || job.kind === "baseline" || job.kind === "policy")) {
      this.options.health.appliedPosition = job.position;
      const traceContext = job.trace?.ack(result.ok ? undefined : error || "failed");
      this.options.sendAck({ position: job.position, updateId: job.updateId, status: result.ok ? AckStatus.APPLIED : AckStatus.FAILED, error, ...(traceContext === undefined ? {} : { traceContext }) });
    }
    job.trace?.end(result.ok ? undefined : error);
  }
}

/**
 * Fleet-wide delivery, as one distributor sees it: for every data update (and policy
 * change) dispatched, the clients it was addressed to and their ACKs. Answers "applied by
 * 97 clients, failed on 1 (error…), pending on 2, disconnected 1", lets a publisher wait
 * for "every client", and lists the recent updates for the dashboard.
 *
 * An update is addressed to the clients connected when it is dispatched (and to those that
 * left shortly before: they may resume). A client whose stream has ended and that has not
 * acknowledged it is *disconnected* for it, not pending: waiting never waits on it, so a
 * client that left does not hold every `?wait=true` publish to its timeout. When it
 * resumes from before the update it is pending again, and its ACK makes it applied.
 * A little over 300 lines: the per-update states, presence and the waiters are one state
 * machine; splitting it would spread one rule over files.
 */
import { create } from "@bufbuild/protobuf";
import { AckStatus, type Ack } from "../../gen/opal/mesh/v1/distributor_pb.js";
import { ClientDeliverySchema, DeliveryState, type UpdateStatus, UpdateStatusSchema } from "../../gen/opal/mesh/v1/delivery_pb.js";
import type { Event } from "../../gen/opal/mesh/v1/event_pb.js";
import { Closing, type Closed, type Component } from "../common/lifecycle.js";
import { scopeOfTopic } from "../common/scopes/scoped-topics.js";
import { traceIdOf } from "../common/telemetry/tracing.js";
import { ClientPresence } from "./client-presence.js";
import { hopClock } from "../common/telemetry/hop-clock.js";

export { traceIdOf };

interface ClientRecord {
  state: DeliveryState;
  error: string;
  /** When the ACK came (0 while pending): the latency is from the update's publish to here. */
  ackedAt: number;
}

/** Shared by every addressed client until it ACKs: one update to 10,000 clients allocates no 10,000 records. */
const PENDING_RECORD: ClientRecord = Object.freeze({ state: DeliveryState.PENDING, error: "", ackedAt: 0 });
/** The same for a client that cannot confirm it (an OPAL client without update reports): nobody waits on it. */
const UNCONFIRMED_RECORD: ClientRecord = Object.freeze({ state: DeliveryState.SENT_UNCONFIRMED, error: "", ackedAt: 0 });

interface UpdateRecord {
  kind: UpdateKind;
  /** Empty for a policy change (clients ACK it by position). */
  updateId: string;
  position: bigint;
  /** When the broadcaster accepted it (latencies are measured from here). */
  publishedAt: number;
  /** When this distributor first dispatched it. */
  dispatchedAt: number;
  traceId: string;
  policyHash: string;
  reason: string;
  /** The scopes its topics belong to (one, unless the event was built by hand). */
  scopes: string[];
  /** The event's topics: whether a client not addressed at dispatch got it later (catch-up). */
  topics: readonly string[];
  clients: Map<string, ClientRecord>;
  /**
   * While someone waits on it: its clients still pending and reachable (connected), kept
   * as ACKs and disconnects come so waiting needs no scan per ACK.
   */
  live: number;
  waiters: Set<() => void>;
}

export type UpdateKind = "data" | "policy";

/** One of the recent updates, as the dashboard lists them. */
export interface RecentUpdate {
  kind: UpdateKind;
  /** The new policy version, for a policy change. */
  policyHash: string;
  reason: string;
  scopes: readonly string[];
  status: UpdateStatus;
}

export interface DeliveryTrackerOptions {
  /** How many updates (data and policy) are remembered (the oldest are forgotten first). */
  maxUpdates: number;
  /**
   * How many (update, client) entries are remembered across all updates: with 10,000
   * clients, 10,000 updates would be 10⁸ entries. The oldest updates are forgotten first;
   * the newest is always kept. Default 1,000,000 (tens of MB).
   */
  maxClientRecords?: number;
  /** Told of each ACK of a tracked update, with its publish→ACK latency (metrics). */
  onAcknowledged?: (kind: UpdateKind, latencyMs: number, failed: boolean) => void;
}

export class DeliveryTracker implements Component {
  readonly name = "delivery tracker";
  private readonly closing = new Closing();
  private readonly byId = new Map<string, UpdateRecord>();
  /** Keyed by the position as a number (exact below 2^53): bigint keys hash several times slower. */
  private readonly byPosition = new Map<number, UpdateRecord>();
  /**
   * Records in dispatch order, oldest at `oldest`: forgetting the oldest from a Map's front
   * (values().next() after many deletes) walks every deleted slot until V8 compacts it,
   * which made forgetting a profile's top entry at thousands of updates a second.
   */
  private order: Array<UpdateRecord | undefined> = [];
  private oldest = 0;
  private readonly dispatchWaiters = new Set<() => void>();
  private dispatchedHead = 0n;
  private clientRecords = 0;
  private readonly presence = new ClientPresence();
  /** Records someone waits on (few): the only ones whose `live` count is kept. */
  private readonly watched = new Set<UpdateRecord>();

  constructor(private readonly options: DeliveryTrackerOptions) {}

  get closed(): Promise<Closed> {
    return this.closing.closed;
  }

  /** Nothing to start: it follows what it is told. */
  async start(): Promise<void> {}

  /** Wakes every waiter (each answers with the status as it is) and ends later waits at once. */
  stop(): Promise<void> {
    if (!this.closing.isClosed) {
      this.closing.stopped();
      for (const wake of [...this.dispatchWaiters]) wake();
      for (const record of [...this.watched]) this.settle(record);
    }
    return Promise.resolve();
  }

  /** Called as fan-out sends an event: `addressed` are the clients it goes to; `unconfirmed`, those of them that cannot confirm it. */
  dispatched(event: Event, addressed: Iterable<string>, unconfirmed?: ReadonlySet<string>): void {
    this.dispatchedHead = event.position;
    const payload = event.payload;
    const kind: UpdateKind | undefined = payload.case === "dataUpdate" && payload.value.id !== "" ? "data" : payload.case === "policyChanged" ? "policy" : undefined;
    if (kind !== undefined) {
      const now = Date.now();
      const record: UpdateRecord = {
        kind,
        updateId: payload.case === "dataUpdate" ? payload.value.id : "",
        position: event.position,
        publishedAt: Number(event.publishedAtUnixMs) || now,
        dispatchedAt: now,
        traceId: traceIdOf(event.traceContext?.traceparent),
        policyHash: payload.case === "policyChanged" ? payload.value.hash : "",
        reason: payload.case === "dataUpdate" ? payload.value.reason : "",
        scopes: event.topics.length === 1 ? [scopeOfTopic(event.topics[0] as string)] : [...new Set(event.topics.map(scopeOfTopic))],
        topics: event.topics,
        clients: new Map(),
        live: 0,
        waiters: new Set(),
      };
      for (const clientId of addressed) record.clients.set(clientId, unconfirmed?.has(clientId) === true ? UNCONFIRMED_RECORD : PENDING_RECORD);
      // A position seen again (the log behind was replaced) replaces the older record and
      // moves to the newest end, so the listing stays in dispatch order.
      const previous = this.byPosition.get(Number(record.position));
      if (previous !== undefined) this.forget(previous);
      if (kind === "data") this.byId.set(record.updateId, record);
      this.byPosition.set(Number(record.position), record);
      this.order.push(record);
      this.clientRecords += record.clients.size;
      this.forgetOldest();
      this.settle(record);
    }
    if (this.dispatchWaiters.size > 0) for (const wake of [...this.dispatchWaiters]) wake();
  }

  /** A client's ACK; a client not counted as addressed (it caught up later) joins the record. */
  acknowledged(clientId: string, ack: Ack): void {
    const record = this.byPosition.get(Number(ack.position));
    if (record === undefined) return;
    const failed = ack.status === AckStatus.FAILED;
    const previous = record.clients.get(clientId);
    if (previous === undefined) this.clientRecords++;
    else if (this.watched.has(record) && this.isLive(clientId, record, previous)) record.live--;
    const ackedAt = Date.now();
    record.clients.set(clientId, { state: failed ? DeliveryState.FAILED : DeliveryState.APPLIED, error: failed ? ack.error : "", ackedAt });
    this.options.onAcknowledged?.(record.kind, Math.max(0, ackedAt - record.publishedAt), failed);
    this.settle(record);
    hopClock.mark("distributor.acked", record.updateId, clientId);
  }

  /**
   * A cumulative ACK: the client applied every update sent to it after `after` up to
   * `through` that it did not report FAILED (those have their own record by now). One
   * APPLIED record is shared by the whole range, so a batch costs a map write per update
   * and one allocation, not an ACK message each. `sentTo` says whether an update the
   * client was not addressed at dispatch reached it later (it caught up), as an ACK of
   * that update alone would have said.
   */
  acknowledgedThrough(clientId: string, after: bigint, through: bigint, sentTo: (topics: readonly string[]) => boolean): void {
    if (through <= after || this.byPosition.size === 0) return;
    const ackedAt = Date.now();
    const applied: ClientRecord = Object.freeze({ state: DeliveryState.APPLIED, error: "", ackedAt });
    const apply = (record: UpdateRecord): void => {
      const previous = record.clients.get(clientId);
      if (previous === undefined) {
        if (!sentTo(record.topics)) return;
        this.clientRecords++;
      } else if (previous.state !== DeliveryState.PENDING) return;
      else if (this.watched.has(record) && this.isLive(clientId, record, previous)) record.live--;
      record.clients.set(clientId, applied);
      this.options.onAcknowledged?.(record.kind, Math.max(0, ackedAt - record.publishedAt), false);
      this.settle(record);
      hopClock.mark("distributor.acked", record.updateId, clientId);
    };
    // By position when the range is short (the usual batch), else over what is remembered.
    if (through - after <= BigInt(this.byPosition.size)) {
      for (let position = Number(after) + 1, last = Number(through); position <= last; position++) {
        const record = this.byPosition.get(position);
        if (record !== undefined) apply(record);
      }
    } else {
      for (const record of [...this.byPosition.values()]) if (record.position > after && record.position <= through) apply(record);
    }
  }

  /**
   * A client's stream opened: it delivers the events after `deliversAfter` (its resume
   * position, or the head for a fresh client). Its unacknowledged updates after that
   * position are pending again; those before stay disconnected.
   */
  clientConnected(clientId: string, deliversAfter: bigint): void {
    this.changePresence(clientId, () => this.presence.connected(clientId, deliversAfter));
  }

  /** A client's last stream ended: what it has not acknowledged is disconnected, not pending. */
  clientDisconnected(clientId: string): void {
    this.changePresence(clientId, () => this.presence.disconnected(clientId));
  }

  status(updateId: string): UpdateStatus {
    const record = this.byId.get(updateId);
    if (record === undefined) return create(UpdateStatusSchema, { updateId, known: false });
    return this.statusOf(record);
  }

  /** The update at a log position (a policy change has no id: a rollout follows its step by position). */
  statusAt(position: bigint): UpdateStatus {
    const record = this.byPosition.get(Number(position));
    if (record === undefined) return create(UpdateStatusSchema, { updateId: "", position, known: false });
    return this.statusOf(record);
  }

  /** The newest `limit` updates, newest first. */
  recent(limit: number): RecentUpdate[] {
    const records = [...this.byPosition.values()];
    const newest: RecentUpdate[] = [];
    for (let index = records.length - 1; index >= 0 && newest.length < limit; index--) {
      const record = records[index] as UpdateRecord;
      newest.push({ kind: record.kind, policyHash: record.policyHash, reason: record.reason, scopes: record.scopes, status: this.statusOf(record) });
    }
    return newest;
  }

  private statusOf(record: UpdateRecord): UpdateStatus {
    let applied = 0;
    let failed = 0;
    let pending = 0;
    let disconnected = 0;
    let unconfirmed = 0;
    const clients = [...record.clients].map(([clientId, client]) => {
      let state = client.state;
      if (state === DeliveryState.APPLIED) applied++;
      else if (state === DeliveryState.FAILED) failed++;
      else if (state === DeliveryState.SENT_UNCONFIRMED) unconfirmed++;
      else if (this.presence.reaches(clientId, record.position)) pending++;
      else {
        state = DeliveryState.DISCONNECTED;
        disconnected++;
      }
      const latencyMs = client.ackedAt === 0 ? 0 : Math.max(0, client.ackedAt - record.publishedAt);
      return create(ClientDeliverySchema, { clientId, state, error: client.error, latencyMs: BigInt(latencyMs) });
    });
    clients.sort((a, b) => a.clientId.localeCompare(b.clientId));
    return create(UpdateStatusSchema, {
      updateId: record.updateId,
      position: record.position,
      complete: pending === 0,
      clients,
      applied,
      failed,
      pending,
      disconnected,
      unconfirmed,
      known: true,
      traceId: record.traceId,
      publishedAtUnixMs: BigInt(record.dispatchedAt),
    });
  }

  /**
   * Waits until the update is dispatched (its position reached) and no addressed client is
   * pending (each applied it, failed, or is disconnected), or until the deadline; then
   * answers with its status.
   */
  async wait(updateId: string, position: bigint, timeoutMs: number, signal: AbortSignal): Promise<UpdateStatus> {
    const deadline = Date.now() + timeoutMs;
    const until = async (ready: () => boolean, waiters: Set<() => void>): Promise<boolean> => {
      while (!ready()) {
        const remaining = deadline - Date.now();
        if (remaining <= 0 || signal.aborted || this.closing.isClosed) return false;
        await new Promise<void>((resolve) => {
          const done = (): void => {
            clearTimeout(timer);
            waiters.delete(done);
            signal.removeEventListener("abort", done);
            resolve();
          };
          const timer = setTimeout(done, remaining);
          waiters.add(done);
          signal.addEventListener("abort", done, { once: true });
        });
      }
      return true;
    };
    await until(() => this.byId.has(updateId) || (position > 0n && this.dispatchedHead >= position), this.dispatchWaiters);
    const record = this.byId.get(updateId);
    // Done when nobody reachable is pending, or when the record was forgotten (too old to follow).
    if (record !== undefined) {
      this.watch(record);
      try {
        await until(() => !this.byId.has(updateId) || record.live === 0, record.waiters);
      } finally {
        if (record.waiters.size === 0) this.watched.delete(record);
      }
    }
    return this.status(updateId);
  }

  /** Pending, and its stream can still deliver it. */
  private isLive(clientId: string, record: UpdateRecord, client: ClientRecord): boolean {
    return client.state === DeliveryState.PENDING && this.presence.reaches(clientId, record.position);
  }

  private watch(record: UpdateRecord): void {
    if (this.watched.has(record)) return;
    let live = 0;
    for (const [clientId, client] of record.clients) if (this.isLive(clientId, record, client)) live++;
    record.live = live;
    this.watched.add(record);
  }

  /** Applies a presence change and keeps the watched records' live counts (O(watched), not O(updates)). */
  private changePresence(clientId: string, change: () => void): void {
    const before = [...this.watched].map((record) => {
      const client = record.clients.get(clientId);
      return client !== undefined && this.isLive(clientId, record, client);
    });
    change();
    [...this.watched].forEach((record, index) => {
      const client = record.clients.get(clientId);
      const now = client !== undefined && this.isLive(clientId, record, client);
      if (now === before[index]) return;
      record.live += now ? 1 : -1;
      this.settle(record);
    });
  }

  private settle(record: UpdateRecord): void {
    if (record.waiters.size === 0) return; // the common case: called for every ACK
    for (const wake of [...record.waiters]) wake();
  }

  private forgetOldest(): void {
    const maxClientRecords = this.options.maxClientRecords ?? 1_000_000;
    while (this.oldest < this.order.length && (this.byPosition.size > this.options.maxUpdates || (this.clientRecords > maxClientRecords && this.byPosition.size > 1))) {
      const record = this.order[this.oldest] as UpdateRecord;
      this.order[this.oldest++] = undefined;
      // A record replaced since (its position seen again) is in the order twice: the old one is gone already.
      if (this.byPosition.get(Number(record.position)) === record) this.forget(record);
    }
    if (this.oldest > 1024 && this.oldest * 2 > this.order.length) {
      this.order = this.order.slice(this.oldest);
      this.oldest = 0;
    }
  }

  private forget(record: UpdateRecord): void {
    if (this.byPosition.get(Number(record.position)) === record) {
      this.byPosition.delete(Number(record.position));
      this.clientRecords -= record.clients.size;
    }
    if (this.byId.get(record.updateId) === record) this.byId.delete(record.updateId);
    this.settle(record);
  }
}

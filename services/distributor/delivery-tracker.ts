/**
 * Fleet-wide delivery, as one distributor sees it: for every data update (and policy
 * change) dispatched, the clients it was addressed to and their ACKs. Answers "applied by
 * 97 clients, failed on 1 (error…), pending on 2", lets a publisher wait for "every
 * client", and lists the recent updates for the dashboard.
 */
import { create } from "@bufbuild/protobuf";
import { AckStatus, type Ack } from "../../gen/opal/mesh/v1/distributor_pb.js";
import { ClientDeliverySchema, DeliveryState, type UpdateStatus, UpdateStatusSchema } from "../../gen/opal/mesh/v1/delivery_pb.js";
import type { Event } from "../../gen/opal/mesh/v1/event_pb.js";
import { scopeOfTopic } from "../common/scopes/scoped-topics.js";
import { traceIdOf } from "../common/telemetry/tracing.js";

export { traceIdOf };

interface ClientRecord {
  state: DeliveryState;
  error: string;
  latencyMs: number;
}

/** Shared by every addressed client until it ACKs: one update to 10,000 clients allocates no 10,000 records. */
const PENDING_RECORD: ClientRecord = Object.freeze({ state: DeliveryState.PENDING, error: "", latencyMs: 0 });

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
  clients: Map<string, ClientRecord>;
  /** Clients in `clients` still pending, kept as ACKs come so waiting needs no scan per ACK. */
  pending: number;
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

export class DeliveryTracker {
  private readonly byId = new Map<string, UpdateRecord>();
  private readonly byPosition = new Map<bigint, UpdateRecord>();
  private readonly dispatchWaiters = new Set<() => void>();
  private dispatchedHead = 0n;
  private clientRecords = 0;

  constructor(private readonly options: DeliveryTrackerOptions) {}

  /** Called as fan-out sends an event: `addressed` are the clients it goes to. */
  dispatched(event: Event, addressed: Iterable<string>): void {
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
        scopes: [...new Set(event.topics.map(scopeOfTopic))],
        clients: new Map(),
        pending: 0,
        waiters: new Set(),
      };
      for (const clientId of addressed) record.clients.set(clientId, PENDING_RECORD);
      record.pending = record.clients.size;
      // A position seen again (the log behind was replaced) replaces the older record and
      // moves to the newest end, so the listing stays in dispatch order.
      const previous = this.byPosition.get(record.position);
      if (previous !== undefined) this.forget(previous);
      if (kind === "data") this.byId.set(record.updateId, record);
      this.byPosition.set(record.position, record);
      this.clientRecords += record.clients.size;
      this.forgetOldest();
      this.settle(record);
    }
    for (const wake of [...this.dispatchWaiters]) wake();
  }

  /** A client's ACK; a client not counted as addressed (it caught up later) joins the record. */
  acknowledged(clientId: string, ack: Ack): void {
    const record = this.byPosition.get(ack.position);
    if (record === undefined) return;
    const failed = ack.status === AckStatus.FAILED;
    const previous = record.clients.get(clientId);
    if (previous === undefined) this.clientRecords++;
    else if (previous.state === DeliveryState.PENDING) record.pending--;
    const latencyMs = Math.max(0, Date.now() - record.publishedAt);
    record.clients.set(clientId, { state: failed ? DeliveryState.FAILED : DeliveryState.APPLIED, error: failed ? ack.error : "", latencyMs });
    this.options.onAcknowledged?.(record.kind, latencyMs, failed);
    this.settle(record);
  }

  /** A client whose updates are addressed but who left: it stays pending (it may resume). */
  status(updateId: string): UpdateStatus {
    const record = this.byId.get(updateId);
    if (record === undefined) return create(UpdateStatusSchema, { updateId, known: false });
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
    const clients = [...record.clients].map(([clientId, client]) => {
      if (client.state === DeliveryState.APPLIED) applied++;
      else if (client.state === DeliveryState.FAILED) failed++;
      else pending++;
      return create(ClientDeliverySchema, { clientId, state: client.state, error: client.error, latencyMs: BigInt(client.latencyMs) });
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
      known: true,
      traceId: record.traceId,
      publishedAtUnixMs: BigInt(record.dispatchedAt),
    });
  }

  /**
   * Waits until the update is dispatched (its position reached) and no addressed client is
   * pending, or until the deadline; then answers with its status.
   */
  async wait(updateId: string, position: bigint, timeoutMs: number, signal: AbortSignal): Promise<UpdateStatus> {
    const deadline = Date.now() + timeoutMs;
    const until = async (ready: () => boolean, waiters: Set<() => void>): Promise<boolean> => {
      while (!ready()) {
        const remaining = deadline - Date.now();
        if (remaining <= 0 || signal.aborted) return false;
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
    // Done when nobody is pending, or when the record was forgotten (too old to follow).
    if (record !== undefined) await until(() => !this.byId.has(updateId) || record.pending === 0, record.waiters);
    return this.status(updateId);
  }

  private settle(record: UpdateRecord): void {
    if (record.waiters.size === 0) return; // the common case: called for every ACK
    for (const wake of [...record.waiters]) wake();
  }

  private forgetOldest(): void {
    const maxClientRecords = this.options.maxClientRecords ?? 1_000_000;
    while (this.byPosition.size > this.options.maxUpdates || (this.clientRecords > maxClientRecords && this.byPosition.size > 1)) {
      this.forget(this.byPosition.values().next().value as UpdateRecord);
    }
  }

  private forget(record: UpdateRecord): void {
    if (this.byPosition.get(record.position) === record) {
      this.byPosition.delete(record.position);
      this.clientRecords -= record.clients.size;
    }
    if (this.byId.get(record.updateId) === record) this.byId.delete(record.updateId);
    this.settle(record);
  }
}

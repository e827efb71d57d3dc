/**
 * Fleet-wide delivery, as one distributor sees it: for every data update dispatched,
 * the clients it was addressed to and their ACKs. Answers "applied by 97 clients,
 * failed on 1 (error…), pending on 2", and lets a publisher wait for "every client".
 */
import { create } from "@bufbuild/protobuf";
import { AckStatus, type Ack } from "../../gen/opal/mesh/v1/distributor_pb.js";
import { ClientDeliverySchema, DeliveryState, type UpdateStatus, UpdateStatusSchema } from "../../gen/opal/mesh/v1/delivery_pb.js";
import type { Event } from "../../gen/opal/mesh/v1/event_pb.js";

interface ClientRecord {
  state: DeliveryState;
  error: string;
  latencyMs: number;
}

interface UpdateRecord {
  updateId: string;
  position: bigint;
  publishedAt: number;
  clients: Map<string, ClientRecord>;
  waiters: Set<() => void>;
}

export interface DeliveryTrackerOptions {
  /** How many updates are remembered (the oldest are forgotten first). */
  maxUpdates: number;
}

export class DeliveryTracker {
  private readonly byId = new Map<string, UpdateRecord>();
  private readonly byPosition = new Map<bigint, UpdateRecord>();
  private readonly dispatchWaiters = new Set<() => void>();
  private dispatchedHead = 0n;

  constructor(private readonly options: DeliveryTrackerOptions) {}

  /** Called as fan-out sends an event: `addressed` are the clients it goes to. */
  dispatched(event: Event, addressed: Iterable<string>): void {
    this.dispatchedHead = event.position;
    if (event.payload.case === "dataUpdate" && event.payload.value.id !== "") {
      const record: UpdateRecord = {
        updateId: event.payload.value.id,
        position: event.position,
        publishedAt: Number(event.publishedAtUnixMs) || Date.now(),
        clients: new Map(),
        waiters: new Set(),
      };
      for (const clientId of addressed) record.clients.set(clientId, { state: DeliveryState.PENDING, error: "", latencyMs: 0 });
      this.byId.set(record.updateId, record);
      this.byPosition.set(record.position, record);
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
    record.clients.set(clientId, { state: failed ? DeliveryState.FAILED : DeliveryState.APPLIED, error: failed ? ack.error : "", latencyMs: Math.max(0, Date.now() - record.publishedAt) });
    this.settle(record);
  }

  /** A client whose updates are addressed but who left: it stays pending (it may resume). */
  status(updateId: string): UpdateStatus {
    const record = this.byId.get(updateId);
    if (record === undefined) return create(UpdateStatusSchema, { updateId, known: false });
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
    return create(UpdateStatusSchema, { updateId, position: record.position, complete: pending === 0, clients, applied, failed, pending, known: true });
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
    if (record !== undefined) await until(() => !this.byId.has(updateId) || [...record.clients.values()].every((client) => client.state !== DeliveryState.PENDING), record.waiters);
    return this.status(updateId);
  }

  private settle(record: UpdateRecord): void {
    for (const wake of [...record.waiters]) wake();
  }

  private forgetOldest(): void {
    while (this.byId.size > this.options.maxUpdates) {
      const oldest = this.byId.values().next().value as UpdateRecord;
      this.byId.delete(oldest.updateId);
      this.byPosition.delete(oldest.position);
      this.settle(oldest);
    }
  }
}

/**
 * The ACKs of one stream, with the APPLIED ones that follow each other sent as one
 * cumulative Ack at the end of the event loop's turn: a batch of events written in one
 * OPA transaction costs the distributor one message, not one per event. A FAILED Ack, or
 * one carrying a trace context (its ACK span joins the update's trace), goes on its own,
 * after the cumulative Ack of what came before it, so the order of the log is kept.
 *
 * Only positions after the session's start may be covered: the server counts a cumulative
 * Ack from there (the resume point, the Welcome's or the last Resync's head). Jobs of an
 * earlier stream that finish on this one, and the baseline at the head, are ACKed alone.
 */
import { AckStatus } from "../../gen/opal/mesh/v1/distributor_pb.js";
import type { AckFields } from "./sync-state.js";
import { hopClock } from "../common/telemetry/hop-clock.js";

export class AckCoalescer {
  private through: bigint | undefined;
  /** The updates the pending cumulative Ack covers, kept only for the latency budget's marks. */
  private covered: string[] = [];
  private scheduled = false;
  private closed = false;

  /** `floor`: where the session started; `cumulative`: the server's Welcome said it takes cumulative Acks. */
  constructor(
    private readonly send: (ack: AckFields) => void,
    private floor: bigint,
    private readonly cumulative: boolean,
    private readonly clientId = "",
  ) {}

  push(ack: AckFields): void {
    if (this.closed) return;
    const position = ack.position ?? 0n;
    if (this.cumulative && ack.status === AckStatus.APPLIED && ack.traceContext === undefined && position > this.floor) {
      if (this.through === undefined || position > this.through) this.through = position;
      if (hopClock.enabled && ack.updateId !== undefined) this.covered.push(ack.updateId);
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
      return;
    }
    this.flush();
    this.send(ack);
    if (ack.updateId !== undefined) hopClock.mark("client.acked", ack.updateId, this.clientId);
  }

  /** A Resync: the server counts cumulative Acks from its head on. */
  restartAt(head: bigint): void {
    this.flush();
    this.floor = head;
  }

  /** Sends the pending cumulative Ack now. */
  flush(): void {
    this.scheduled = false;
    const through = this.through;
    if (through === undefined || this.closed) return;
    this.through = undefined;
    this.send({ position: through, updateId: "", status: AckStatus.APPLIED, error: "", cumulative: true });
    for (const updateId of this.covered) hopClock.mark("client.acked", updateId, this.clientId);
    this.covered = [];
  }

  /** The stream ended: what is pending is dropped (the next stream resumes from the client's position). */
  close(): void {
    this.closed = true;
    this.through = undefined;
    this.covered = [];
  }
}

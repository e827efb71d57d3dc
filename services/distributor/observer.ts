/**
 * The one seam through which the distributor's moving parts are seen (go-control-plane's
 * `Callbacks`): fan-out, the session registry and the client streams call it; delivery
 * tracking, ACK spans, metrics, the bundle cache and the dashboard's change feed each
 * implement the part they care about. Nothing on the hot path knows who listens.
 */
import type { Ack } from "../../gen/opal/mesh/v1/distributor_pb.js";
import type { Event } from "../../gen/opal/mesh/v1/event_pb.js";
import type { UpdateKind } from "./delivery-tracker.js";
import type { ClientSession } from "./session.js";

/** A part of the distributor that failed and retries (logged, and counted in metrics). */
export type DistributorFault = "log subscription" | "recent events" | "catch-up";

export interface DistributorObserver {
  /** An event from the log, before any session sees it (e.g. to drop cached bundles on PolicyChanged). */
  onEvent?(event: Event): void;
  /**
   * Fan-out sent an event; `addressed` are the clients it went to (and those that left
   * shortly before: they may resume); `unconfirmed`, those of them that cannot confirm it.
   */
  onDispatched?(event: Event, addressed: readonly string[], unconfirmed?: ReadonlySet<string>): void;
  /** A client's stream was registered with fan-out; it delivers the events after `deliversAfter`. */
  onClientConnected?(clientId: string, deliversAfter: bigint): void;
  /** A client's last open stream ended. */
  onClientDisconnected?(clientId: string): void;
  /** A session opened (after any older one of the same client was replaced). */
  onSessionOpened?(session: ClientSession): void;
  onSessionClosed?(session: ClientSession): void;
  /** A client's report said something new about its health. */
  onReport?(session: ClientSession): void;
  onAck?(clientId: string, ack: Ack): void;
  /** A cumulative ACK: the session applied what was sent to it after `after` up to `through`, except what it reported FAILED. */
  onAcksThrough?(session: ClientSession, after: bigint, through: bigint): void;
  /** A tracked update was acknowledged, `latencyMs` after it was published. */
  onDelivered?(kind: UpdateKind, latencyMs: number, failed: boolean): void;
  /** Something went wrong and was logged; the part retries or the client resumes. */
  onFault?(fault: DistributorFault, error: unknown): void;
}

type Notify = { [K in keyof DistributorObserver]-?: NonNullable<DistributorObserver[K]> };

/** Every observer added, told of each call in the order they were added. */
export class Observers implements Notify {
  private readonly list: DistributorObserver[] = [];

  add(...observers: DistributorObserver[]): this {
    this.list.push(...observers);
    return this;
  }

  onEvent(event: Event): void {
    for (const observer of this.list) observer.onEvent?.(event);
  }

  onDispatched(event: Event, addressed: readonly string[], unconfirmed?: ReadonlySet<string>): void {
    for (const observer of this.list) observer.onDispatched?.(event, addressed, unconfirmed);
  }

  onClientConnected(clientId: string, deliversAfter: bigint): void {
    for (const observer of this.list) observer.onClientConnected?.(clientId, deliversAfter);
  }

  onClientDisconnected(clientId: string): void {
    for (const observer of this.list) observer.onClientDisconnected?.(clientId);
  }

  onSessionOpened(session: ClientSession): void {
    for (const observer of this.list) observer.onSessionOpened?.(session);
  }

  onSessionClosed(session: ClientSession): void {
    for (const observer of this.list) observer.onSessionClosed?.(session);
  }

  onReport(session: ClientSession): void {
    for (const observer of this.list) observer.onReport?.(session);
  }

  onAck(clientId: string, ack: Ack): void {
    for (const observer of this.list) observer.onAck?.(clientId, ack);
  }

  onAcksThrough(session: ClientSession, after: bigint, through: bigint): void {
    for (const observer of this.list) observer.onAcksThrough?.(session, after, through);
  }

  onDelivered(kind: UpdateKind, latencyMs: number, failed: boolean): void {
    for (const observer of this.list) observer.onDelivered?.(kind, latencyMs, failed);
  }

  onFault(fault: DistributorFault, error: unknown): void {
    for (const observer of this.list) observer.onFault?.(fault, error);
  }
}

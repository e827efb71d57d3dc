/**
 * One connected client: its subscription, what was sent to it, what it acknowledged.
 * Transport-agnostic: the stream server hands it a sink that writes serialized frames.
 *
 * Its cursor (`sentPosition`) moves only through the transitions below: catch-up
 * (catch-up.ts) starts it at the head or the resume point and replays, fan-out
 * (fanout.ts) delivers, skips and resyncs.
 */
import { randomUUID } from "node:crypto";
import { equals } from "@bufbuild/protobuf";
import { AckStatus, type Ack, type ClientReport, ClientReportSchema } from "../../gen/opal/mesh/v1/distributor_pb.js";
import type { Event } from "../../gen/opal/mesh/v1/event_pb.js";
import { DEFAULT_SCOPE } from "../common/scopes/scoped-topics.js";
import { anyTopicCovered } from "../common/topics.js";
import { hopClock } from "../common/telemetry/hop-clock.js";

export interface FrameSink {
  /** Writes one serialized ConnectResponse; returns false when the transport is backed up. */
  write(frame: Uint8Array): boolean;
  /** Frames accepted but not yet flushed to the network. */
  buffered(): number;
  /** The same, in encoded bytes. */
  bufferedBytes(): number;
  /** Resolves once no more than this many frames and bytes wait (at once if the stream ended). */
  whenBelow(frames: number, bytes: number): Promise<void>;
  /** Ends the stream with an error the client will see (it reconnects and resumes). */
  fail(code: "resource_exhausted" | "unavailable" | "data_loss" | "aborted", message: string): void;
}

/** How much may wait to be sent to one client before it is dropped (it resumes by itself). */
export interface SendLimits {
  maxFrames: number;
  maxBytes: number;
}

/** How a client is connected: opal-mesh's gRPC stream, or OPAL's websocket pub/sub (an unmodified OPAL client). */
export type ClientProtocol = "opal-mesh" | "opal-ws";

interface PendingFrame {
  frame: Uint8Array;
  position: bigint;
}

export class ClientSession {
  readonly sessionId = randomUUID();
  readonly connectedAt = Date.now();
  /** Everything up to this position was sent or deliberately skipped (not addressed to the client). */
  private sent = 0n;
  ackedPosition = 0n;
  /** Where the next cumulative ACK's range starts: the session's start, then the last cumulative ACK. */
  private cumulativeFrom = 0n;
  /** The last event actually sent (not skipped): a client that ACKed it is caught up to sentPosition. */
  deliveredPosition = 0n;
  lastFailure: { position: bigint; updateId: string; error: string } | undefined;
  /** What the client last said about its health (undefined until it reports; older clients never do). */
  lastReport: { report: ClientReport; receivedAt: number } | undefined;
  private catchingUp = false;
  private pendingLive: PendingFrame[] = [];
  private pendingLiveBytes = 0;
  private closed = false;
  private subscribed: readonly string[];
  /** opal-mesh clients ACK everything; an OPAL client confirms only once it sends update reports. */
  private confirming: boolean;

  constructor(
    readonly clientId: string,
    topics: readonly string[],
    readonly peer: string,
    private readonly sink: FrameSink,
    private readonly limits: SendLimits,
    /** The scope the client joined; its topics are already inside it. */
    readonly scope: string = DEFAULT_SCOPE,
    /** It writes the log's snapshot with its baseline (Hello.accepts_snapshot): fresh and resynced starts send one. */
    readonly acceptsSnapshot = false,
    readonly protocol: ClientProtocol = "opal-mesh",
    /** From its Hello (OPAL_MESH_CLIENT_LABELS); OPAL clients have none. */
    readonly labels: Readonly<Record<string, string>> = {},
  ) {
    this.subscribed = topics;
    this.confirming = protocol === "opal-mesh";
  }

  get topics(): readonly string[] {
    return this.subscribed;
  }

  /** OPAL's pub/sub subscribes and unsubscribes topics on a live connection; the cursor goes on. */
  setTopics(topics: readonly string[]): void {
    this.subscribed = topics;
  }

  /** Whether what it applied is confirmed to us (ACKs, or OPAL's update reports). */
  get confirms(): boolean {
    return this.confirming;
  }

  /** An OPAL client sent an update report: from now on its deliveries are waited on like ACKs. */
  markConfirming(): void {
    this.confirming = true;
  }

  get sentPosition(): bigint {
    return this.sent;
  }

  accepts(event: Event): boolean {
    return this.acceptsTopics(event.topics);
  }

  acceptsTopics(topics: readonly string[]): boolean {
    return anyTopicCovered(this.topics, topics);
  }

  /** The client delivers what comes after `position` (the head for a fresh client, or its resume point). */
  startAt(position: bigint): void {
    this.sent = position;
    this.cumulativeFrom = position;
  }

  /**
   * The client's position means nothing any more (a new log, or one past the retention):
   * it is told so with `frame` (a Resync) and goes on after `head`.
   */
  resync(frame: Uint8Array, head: bigint): void {
    this.sent = head;
    this.cumulativeFrom = head;
    this.sendControl(frame);
  }

  /** Live fan-out entry point: the same bytes for every session. */
  deliver(frame: Uint8Array, event: Event): void {
    if (this.closed || event.position <= this.sent) return;
    if (this.catchingUp) {
      this.pendingLive.push({ frame, position: event.position });
      this.pendingLiveBytes += frame.byteLength;
      // Live events outpacing the replay are held here: the same bounds apply.
      if (this.pendingLive.length > this.limits.maxFrames || (this.pendingLiveBytes > this.limits.maxBytes && this.pendingLive.length > 1)) {
        this.terminate("resource_exhausted", `client is too slow: it cannot catch up (over ${this.limits.maxBytes} bytes or ${this.limits.maxFrames} live events held back); resume from position ${this.ackedPosition}`);
      }
      return;
    }
    this.send(frame, event.position, event);
  }

  /** Advances past an event not addressed to this client, so progress stays exact. */
  skip(position: bigint): void {
    if (!this.catchingUp && position > this.sent) this.sent = position;
  }

  /** While replaying missed events, live ones are held back and flushed afterwards in order. */
  beginCatchUp(after: bigint): void {
    this.catchingUp = true;
    this.sent = after;
    this.cumulativeFrom = after;
  }

  sendCatchUp(frame: Uint8Array | undefined, position: bigint): void {
    if (position <= this.sent) return;
    if (frame === undefined) this.sent = position;
    else this.send(frame, position);
  }

  /**
   * Catch-up's back-pressure: resolves once the client has taken half of what may wait for
   * it, so a long replay follows the client's pace instead of overrunning its send buffer.
   */
  roomForCatchUp(): Promise<void> {
    return this.sink.whenBelow(Math.floor(this.limits.maxFrames / 2), Math.floor(this.limits.maxBytes / 2));
  }

  /** The first held-back live event, if any: catch-up may stop once it reaches it. */
  firstPendingPosition(): bigint | undefined {
    return this.pendingLive[0]?.position;
  }

  endCatchUp(): void {
    const pending = this.pendingLive;
    this.pendingLive = [];
    this.pendingLiveBytes = 0;
    this.catchingUp = false;
    for (const { frame, position } of pending) {
      if (position > this.sent) this.send(frame, position);
    }
  }

  sendControl(frame: Uint8Array): void {
    if (!this.closed) this.sink.write(frame);
  }

  /**
   * Keeps what the ACK says; for a cumulative one, returns the range of positions it covers
   * (after, through]: never past what was sent, never before the session's start.
   */
  recordAck(ack: Ack): { after: bigint; through: bigint } | undefined {
    if (ack.cumulative && ack.status === AckStatus.APPLIED) {
      const through = ack.position < this.sent ? ack.position : this.sent;
      const after = this.cumulativeFrom;
      if (through <= after) return undefined;
      this.cumulativeFrom = through;
      if (through > this.ackedPosition) this.ackedPosition = through;
      return { after, through };
    }
    if (ack.position > this.ackedPosition) this.ackedPosition = ack.position;
    if (ack.status === AckStatus.FAILED) {
      this.lastFailure = { position: ack.position, updateId: ack.updateId, error: ack.error };
    }
    return undefined;
  }

  /** Keeps the client's latest report; true when it says something new (not a mere refresh). */
  recordReport(report: ClientReport): boolean {
    const changed = this.lastReport === undefined || !equals(ClientReportSchema, this.lastReport.report, report);
    this.lastReport = { report, receivedAt: Date.now() };
    return changed;
  }

  /** Stops delivery and lets go of every frame held for the client. */
  close(): void {
    this.closed = true;
    this.pendingLive = [];
    this.pendingLiveBytes = 0;
  }

  /** Ends the stream with an error; the client reconnects and resumes. */
  terminate(code: Parameters<FrameSink["fail"]>[0], message: string): void {
    if (this.closed) return;
    this.close();
    this.sink.fail(code, message);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private send(frame: Uint8Array, position: bigint, event?: Event): void {
    if (this.closed) return;
    if (hopClock.enabled && event?.payload.case === "dataUpdate") hopClock.mark("stream.queued", event.payload.value.id, this.clientId);
    this.sent = position;
    this.deliveredPosition = position;
    this.sink.write(frame);
    // A client that stops reading must not grow our memory without bound: drop it; it
    // reconnects and resumes from the position it applied. One frame larger than the byte
    // bound alone still goes (else that client could never get past it).
    const frames = this.sink.buffered();
    const bytes = this.sink.bufferedBytes();
    if (frames > this.limits.maxFrames) {
      this.terminate("resource_exhausted", `client is too slow: more than ${this.limits.maxFrames} events waiting to be sent; resume from position ${this.ackedPosition}`);
    } else if (bytes > this.limits.maxBytes && frames > 1) {
      this.terminate("resource_exhausted", `client is too slow: send buffer over ${this.limits.maxBytes} bytes (${frames} events waiting); resume from position ${this.ackedPosition}`);
    }
  }
}

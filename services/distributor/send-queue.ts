/**
 * One stream's send buffer: the serialized frames waiting for a client, counted in frames
 * and in bytes until the transport says each one left.
 *
 * grpc-js copies every frame it writes (5-byte header + message) into the HTTP/2 stream
 * and holds the frames queued behind it in its own Duplex buffer; for a client that stops
 * reading, neither ever drains. So frames are handed to the call only while it accepts
 * more (`write()` true), the rest wait here, and a frame counts as sent only when its write
 * callback fires. `clear()` lets go of everything not yet handed over, at once: a dropped
 * client's frames are not kept alive by its stalled stream.
 *
 * With batches (a client whose Hello said accepts_batches), frames are handed over at the
 * end of the event loop's turn (setImmediate: microseconds when idle), one write in flight
 * at a time, and the event frames that queued up meanwhile leave as one EventBatch
 * message: the events of one log append (or of everything that arrived in one poll) reach
 * a client as one message, one decode and one cumulative ACK. Writing at once would not
 * batch: on loopback each write completes before fan-out has the next event.
 */
import { batchFrames, isEventFrame } from "./event-batch.js";

/** What the queue writes to: a grpc-js server call, or a test's stand-in. */
export interface FrameTransport {
  /** false when the transport wants no more until "drain". */
  write(frame: Uint8Array, callback: (error?: Error | null) => void): boolean;
  on(event: "drain", listener: () => void): unknown;
}

/** gRPC's length-prefixed message framing adds these bytes to every frame. */
export const GRPC_FRAME_HEADER_BYTES = 5;

/** A batch stays well under any message limit, and one slow write holds back little. */
const MAX_BATCH_EVENTS = 1024;
const MAX_BATCH_BYTES = 512 * 1024;

export class SendQueue {
  // queue[head..] waits; head avoids O(n) shifts.
  private queue: Array<Uint8Array | undefined> = [];
  private head = 0;
  private queuedBytes = 0;
  private inFlightFrames = 0;
  private inFlightBytes = 0;
  private blocked = false;
  private cleared = false;
  private batching = false;
  private writing = 0;
  private pumping = false;
  private pumpScheduled = false;
  private roomWaiters: Array<{ frames: number; bytes: number; wake: () => void }> = [];

  constructor(private readonly transport: FrameTransport) {
    transport.on("drain", () => {
      this.blocked = false;
      this.pump();
    });
  }

  /** Frames not yet sent: waiting here or held by the transport. */
  get frames(): number {
    return this.queue.length - this.head + this.inFlightFrames;
  }

  /** Their encoded size, as the transport holds them. */
  get bytes(): number {
    return this.queuedBytes + this.inFlightBytes;
  }

  /** From now on, event frames queued behind a write in flight leave together (the client takes EventBatch). */
  enableBatches(): void {
    this.batching = true;
  }

  /** Queues a frame in order; false when it has to wait (the transport is backed up). */
  write(frame: Uint8Array): boolean {
    if (this.cleared) return false;
    this.queue.push(frame);
    this.queuedBytes += frame.byteLength + GRPC_FRAME_HEADER_BYTES;
    if (!this.batching) this.pump();
    else if (!this.pumpScheduled) {
      this.pumpScheduled = true;
      setImmediate(() => {
        this.pumpScheduled = false;
        this.pump();
      });
    }
    return this.head === this.queue.length;
  }

  /** Resolves once no more than `frames` frames and `bytes` bytes wait (or the queue is cleared). */
  whenBelow(frames: number, bytes: number): Promise<void> {
    if (this.cleared || (this.frames <= frames && this.bytes <= bytes)) return Promise.resolve();
    return new Promise((wake) => this.roomWaiters.push({ frames, bytes, wake }));
  }

  /** Drops every frame not handed to the transport yet; later writes are ignored. */
  clear(): void {
    this.cleared = true;
    this.queue = [];
    this.head = 0;
    this.queuedBytes = 0;
    this.wakeRoomWaiters();
  }

  private wakeRoomWaiters(): void {
    if (this.roomWaiters.length === 0) return;
    const waiting = this.roomWaiters;
    this.roomWaiters = [];
    for (const waiter of waiting) {
      if (this.cleared || (this.frames <= waiter.frames && this.bytes <= waiter.bytes)) waiter.wake();
      else this.roomWaiters.push(waiter);
    }
  }

  private pump(): void {
    // A transport that calls back at once (before write returns) re-enters here: the loop below goes on instead.
    if (this.pumping) return;
    this.pumping = true;
    while (!this.blocked && !(this.batching && this.writing > 0) && this.head < this.queue.length) {
      const { frame, count, size } = this.takeNext();
      this.inFlightFrames += count;
      this.inFlightBytes += size;
      this.writing++;
      this.blocked = !this.transport.write(frame, () => {
        this.writing--;
        this.inFlightFrames -= count;
        this.inFlightBytes -= size;
        this.wakeRoomWaiters();
        if (this.batching) this.pump();
      });
    }
    this.pumping = false;
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }

  /** The next frame to write: the head of the queue, or with batches the run of event frames it starts. */
  private takeNext(): { frame: Uint8Array; count: number; size: number } {
    const first = this.take();
    const firstSize = first.byteLength + GRPC_FRAME_HEADER_BYTES;
    if (!this.batching || !isEventFrame(first) || !this.nextIsEvent()) return { frame: first, count: 1, size: firstSize };
    const run = [first];
    let size = firstSize;
    while (run.length < MAX_BATCH_EVENTS && this.nextIsEvent() && size + (this.queue[this.head] as Uint8Array).byteLength <= MAX_BATCH_BYTES) {
      const frame = this.take();
      run.push(frame);
      size += frame.byteLength + GRPC_FRAME_HEADER_BYTES;
    }
    return { frame: run.length === 1 ? first : batchFrames(run), count: run.length, size };
  }

  private nextIsEvent(): boolean {
    const next = this.queue[this.head];
    return next !== undefined && isEventFrame(next);
  }

  private take(): Uint8Array {
    const frame = this.queue[this.head] as Uint8Array;
    this.queue[this.head] = undefined;
    this.head++;
    this.queuedBytes -= frame.byteLength + GRPC_FRAME_HEADER_BYTES;
    return frame;
  }
}

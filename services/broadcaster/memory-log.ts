/**
 * The embedded deployment's log: an in-memory, ordered, bounded list of events.
 * Positions start at 1 and never repeat; the oldest events are dropped once the log
 * holds more than `maxEvents` events or `maxBytes` of them (serialized size).
 */
import { randomUUID } from "node:crypto";
import { toBinary } from "@bufbuild/protobuf";
import { type Event, EventSchema } from "../../gen/opal/mesh/v1/event_pb.js";

export interface MemoryLogOptions {
  maxEvents: number;
  maxBytes: number;
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

interface Retained {
  event: Event;
  size: number;
}

export class MemoryLog {
  /** A new id per process: positions do not survive a restart of an in-memory log. */
  readonly logId = `memory:${randomUUID()}`;
  // entries[offset + i] holds position firstRetained + i; the offset avoids O(n) shifts.
  private entries: Retained[] = [];
  private offset = 0;
  private firstRetained = 1n;
  private headPosition = 0n;
  private retainedBytes = 0;
  private waiters: Array<() => void> = [];

  constructor(private readonly options: MemoryLogOptions) {}

  head(): { headPosition: bigint; firstRetainedPosition: bigint; logId: string } {
    return { headPosition: this.headPosition, firstRetainedPosition: this.firstRetained, logId: this.logId };
  }

  /** Stamps positions and publish time on the events (in place) and appends them. */
  append(events: readonly Event[]): bigint[] {
    const now = BigInt(Date.now());
    const positions: bigint[] = [];
    for (const event of events) {
      this.headPosition += 1n;
      event.position = this.headPosition;
      event.publishedAtUnixMs = now;
      const size = toBinary(EventSchema, event).byteLength;
      this.entries.push({ event, size });
      this.retainedBytes += size;
      positions.push(this.headPosition);
    }
    this.trim();
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
    return positions;
  }

  /** Retained events with a position greater than `after`, oldest first. */
  eventsAfter(after: bigint, limit = 1024): Event[] {
    if (after + 1n < this.firstRetained) throw new LogTruncatedError(after, this.firstRetained);
    const start = this.offset + Number(after + 1n - this.firstRetained);
    const end = Math.min(this.entries.length, start + limit);
    const events: Event[] = [];
    for (let index = start; index < end; index++) {
      const retained = this.entries[index];
      if (retained !== undefined) events.push(retained.event);
    }
    return events;
  }

  /** Resolves on the next append, or when the signal aborts. */
  waitForAppend(signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted) {
        resolve();
        return;
      }
      const wake = (): void => {
        signal.removeEventListener("abort", wake);
        resolve();
      };
      this.waiters.push(wake);
      signal.addEventListener("abort", wake, { once: true });
    });
  }

  /**
   * Every event after `after` in order, then live ones, until the signal aborts.
   * Throws LogTruncatedError when the reader falls behind the retention window.
   */
  async *read(after: bigint, signal: AbortSignal): AsyncGenerator<Event> {
    let cursor = after;
    while (!signal.aborted) {
      const batch = this.eventsAfter(cursor);
      if (batch.length === 0) {
        await this.waitForAppend(signal);
        continue;
      }
      for (const event of batch) {
        yield event;
        cursor = event.position;
      }
    }
  }

  private trim(): void {
    let retainedCount = this.entries.length - this.offset;
    while (retainedCount > 0 && (retainedCount > this.options.maxEvents || this.retainedBytes > this.options.maxBytes)) {
      const dropped = this.entries[this.offset];
      this.offset++;
      retainedCount--;
      this.firstRetained += 1n;
      this.retainedBytes -= dropped?.size ?? 0;
    }
    if (this.offset > 4096 && this.offset * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.offset);
      this.offset = 0;
    }
  }
}

/**
 * A contiguous window of events by position, bounded by count and serialized size: the
 * in-memory log itself, and the recent-events cache in front of Kafka. Readers wait for
 * new events; one that falls out of the window gets LogTruncatedError.
 */
import { toBinary } from "@bufbuild/protobuf";
import { type Event, EventSchema } from "../../gen/opal/mesh/v1/event_pb.js";
import { LogTruncatedError } from "./event-log.js";

export interface WindowOptions {
  maxEvents: number;
  maxBytes: number;
}

interface Retained {
  event: Event;
  size: number;
}

export class RetainedWindow {
  // entries[offset + i] holds position first + i; the offset avoids O(n) shifts. Slots
  // before the offset are emptied, so dropped events are freed at once (the retention is
  // in bytes: 4,096 kept-alive 200 KB events would be 800 MB past it).
  private entries: Array<Retained | undefined> = [];
  private offset = 0;
  private first = 1n;
  private last = 0n;
  private bytes = 0;
  private waiters: Array<() => void> = [];

  constructor(private readonly options: WindowOptions) {}

  /** Position of the newest event held (0 when none ever was). */
  get head(): bigint {
    return this.last;
  }

  /** Position of the oldest event held (head + 1 when empty). */
  get firstRetained(): bigint {
    return this.first;
  }

  /** Adds the next event; one that does not follow the head restarts the window there. */
  put(event: Event): void {
    if (event.position !== this.last + 1n) {
      this.entries = [];
      this.offset = 0;
      this.bytes = 0;
      this.first = event.position;
    }
    const size = toBinary(EventSchema, event).byteLength;
    this.entries.push({ event, size });
    this.bytes += size;
    this.last = event.position;
    this.trim();
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  /** Held events with a position greater than `after`, oldest first. */
  eventsAfter(after: bigint, limit = 1024): Event[] {
    if (after + 1n < this.first) throw new LogTruncatedError(after, this.first);
    const start = this.offset + Number(after + 1n - this.first);
    const end = Math.min(this.entries.length, start + limit);
    const events: Event[] = [];
    for (let index = start; index < end; index++) {
      const retained = this.entries[index];
      if (retained !== undefined) events.push(retained.event);
    }
    return events;
  }

  waitForPut(signal: AbortSignal): Promise<void> {
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

  async *read(after: bigint, signal: AbortSignal): AsyncGenerator<Event> {
    let cursor = after;
    while (!signal.aborted) {
      const batch = this.eventsAfter(cursor);
      if (batch.length === 0) {
        await this.waitForPut(signal);
        continue;
      }
      for (const event of batch) {
        yield event;
        cursor = event.position;
      }
    }
  }

  private trim(): void {
    let count = this.entries.length - this.offset;
    while (count > 0 && (count > this.options.maxEvents || this.bytes > this.options.maxBytes)) {
      const dropped = this.entries[this.offset];
      this.entries[this.offset] = undefined;
      this.offset++;
      count--;
      this.first += 1n;
      this.bytes -= dropped?.size ?? 0;
    }
    if (this.offset > 4096 && this.offset * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.offset);
      this.offset = 0;
    }
  }
}

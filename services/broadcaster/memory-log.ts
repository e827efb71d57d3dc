/**
 * The embedded deployment's log: an in-memory, ordered, bounded list of events.
 * Positions start at 1 and never repeat; the oldest events are dropped once the log
 * holds more than `maxEvents` events or `maxBytes` of them (serialized size).
 */
import { randomUUID } from "node:crypto";
import type { Event } from "../../gen/opal/mesh/v1/event_pb.js";
import type { EventLog, LogHead } from "./event-log.js";
import { RetainedWindow, type WindowOptions } from "./retained-window.js";

export { LogTruncatedError } from "./event-log.js";
export type MemoryLogOptions = WindowOptions;

export class MemoryLog implements EventLog {
  /** A new id per process: positions do not survive a restart of an in-memory log. */
  readonly logId = `memory:${randomUUID()}`;
  private readonly window: RetainedWindow;

  constructor(options: MemoryLogOptions) {
    this.window = new RetainedWindow(options);
  }

  head(): LogHead {
    return { headPosition: this.window.head, firstRetainedPosition: this.window.firstRetained, logId: this.logId };
  }

  /** Stamps positions and publish time on the events (in place) and appends them. */
  append(events: readonly Event[]): Promise<bigint[]> {
    return Promise.resolve(this.appendNow(events));
  }

  appendNow(events: readonly Event[]): bigint[] {
    const now = BigInt(Date.now());
    return events.map((event) => {
      event.position = this.window.head + 1n;
      event.publishedAtUnixMs = now;
      this.window.put(event);
      return event.position;
    });
  }

  eventsAfter(after: bigint, limit = 1024): Event[] {
    return this.window.eventsAfter(after, limit);
  }

  read(after: bigint, signal: AbortSignal): AsyncGenerator<Event> {
    return this.window.read(after, signal);
  }
}

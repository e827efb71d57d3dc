/**
 * The embedded deployment's log: an in-memory, ordered, bounded list of events.
 * Positions start at 1 and never repeat; the oldest events are dropped once the log
 * holds more than `maxEvents` events or `maxBytes` of them (serialized size).
 */
import { randomUUID } from "node:crypto";
import type { Event } from "../../gen/opal/mesh/v1/event_pb.js";
import { type EventWindow, type EventWindowLimits, logEventWindow } from "../common/event-window.js";
import { LogSnapshot } from "../common/snapshot/log-snapshot.js";
import type { Snapshot } from "../common/snapshot/types.js";
import { type EventLog, type LogHead, LogTruncatedError } from "./event-log.js";

export { LogTruncatedError } from "./event-log.js";
export type MemoryLogOptions = EventWindowLimits;

export class MemoryLog implements EventLog {
  /** A new id per process: positions do not survive a restart of an in-memory log. */
  readonly logId = `memory:${randomUUID()}`;
  private readonly window: EventWindow<Event>;
  /** Folded on append, so it covers the whole log even after the window dropped old events. */
  readonly snapshot: Snapshot = new LogSnapshot();

  constructor(options: MemoryLogOptions) {
    this.window = logEventWindow(options, (after, first) => new LogTruncatedError(after, first));
  }

  head(): LogHead {
    return { headPosition: this.window.end, firstRetainedPosition: this.window.firstRetained, logId: this.logId };
  }

  /** Stamps positions and publish time on the events (in place) and appends them. */
  append(events: readonly Event[]): Promise<bigint[]> {
    return Promise.resolve(this.appendNow(events));
  }

  appendNow(events: readonly Event[]): bigint[] {
    const now = BigInt(Date.now());
    return events.map((event) => {
      event.position = this.window.end + 1n;
      event.publishedAtUnixMs = now;
      this.window.append(event);
      this.snapshot.fold(event);
      return event.position;
    });
  }

  eventsAfter(after: bigint, limit = 1024): Event[] {
    if (after < this.window.start) throw new LogTruncatedError(after, this.window.firstRetained);
    return this.window.after(after, limit) ?? [];
  }

  snapshotProblem(): string | undefined {
    return undefined;
  }

  read(after: bigint, signal: AbortSignal): AsyncGenerator<Event> {
    return this.window.read(after, signal);
  }
}

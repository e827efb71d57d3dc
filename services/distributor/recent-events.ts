/**
 * The newest events of the log, held by the distributor so a resuming client is replayed
 * from memory. Without it every resume opened its own subscription to the broadcaster:
 * after a distributor restart, 1,000 clients coming back meant 1,000 log streams at once,
 * and the slowest client waited seconds for its replay (bench: reconnect-storm).
 *
 * It holds every log event in (start, end], contiguous: live events are appended as
 * fan-out dispatches them, and after a (re)start the events before the head are filled
 * in from the log by one subscription. Bounded by count and bytes; the oldest go first.
 */
import type { Event } from "../../gen/opal/mesh/v1/event_pb.js";
import { DEFAULT_SCOPE } from "../common/scopes/scoped-topics.js";
import { encodeEventFor } from "./fanout.js";

export interface RecentEventsLimits {
  maxEvents: number;
  maxBytes: number;
}

export interface RecentEvent {
  event: Event;
  /** The event as a default-scope client receives it. */
  frame: Uint8Array;
}

export class RecentEvents {
  private entries: RecentEvent[] = [];
  private bytes = 0;
  private startPosition = 0n;
  private endPosition = 0n;

  constructor(readonly limits: RecentEventsLimits) {}

  /** Every log event after this position (up to `end`) is held. */
  get start(): bigint {
    return this.startPosition;
  }

  get end(): bigint {
    return this.endPosition;
  }

  get size(): number {
    return this.entries.length;
  }

  /** Forgets everything: the window restarts, empty, at `position` (a new log, a gap). */
  reset(position: bigint): void {
    this.entries = [];
    this.bytes = 0;
    this.startPosition = position;
    this.endPosition = position;
  }

  /** The next event of the log (fan-out dispatches them in order, none skipped). */
  append(event: Event, frame: Uint8Array = encodeEventFor(event, DEFAULT_SCOPE)): void {
    if (event.position <= this.endPosition) return;
    this.entries.push({ event, frame });
    this.bytes += frame.byteLength;
    this.endPosition = event.position;
    this.trim();
  }

  /**
   * Puts older events in front: every log event in (from, this.start], in order. Refused
   * (false) when the window moved meanwhile (reset) so the two parts would not join.
   */
  prepend(from: bigint, joinsAt: bigint, events: readonly Event[]): boolean {
    if (joinsAt !== this.startPosition || from > joinsAt) return false;
    const older = events.filter((event) => event.position > from && event.position <= joinsAt).map((event) => ({ event, frame: encodeEventFor(event, DEFAULT_SCOPE) }));
    this.entries = [...older, ...this.entries];
    this.bytes += older.reduce((sum, entry) => sum + entry.frame.byteLength, 0);
    this.startPosition = from;
    this.trim();
    return true;
  }

  /** The events after `position`, or undefined when the window does not reach back to it. */
  after(position: bigint): RecentEvent[] | undefined {
    if (position < this.startPosition || position > this.endPosition) return undefined;
    // Positions ascend: binary search for the first one after `position`.
    let low = 0;
    let high = this.entries.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if ((this.entries[middle] as RecentEvent).event.position <= position) low = middle + 1;
      else high = middle;
    }
    return this.entries.slice(low);
  }

  private trim(): void {
    let drop = 0;
    while (this.entries.length - drop > 0 && (this.entries.length - drop > this.limits.maxEvents || this.bytes > this.limits.maxBytes)) {
      const entry = this.entries[drop] as RecentEvent;
      this.bytes -= entry.frame.byteLength;
      this.startPosition = entry.event.position;
      drop++;
    }
    if (drop > 0) this.entries.splice(0, drop);
  }
}

/**
 * The newest events of a log, held in memory by position and bounded by count and bytes:
 * the broadcaster's in-memory log (and its recent-events cache in front of Kafka), and
 * the distributor's window that replays resuming clients without a log stream each.
 *
 * It holds every log event in (start, end], in order; the oldest go first once there are
 * more than `maxEvents` or they add up to more than `maxBytes`. A dropped event's slot is
 * emptied at once: retention is in bytes, and 4,096 kept-alive 200 KB events would be
 * 800 MB past it. Readers may wait for the next event.
 */
import { toBinary } from "@bufbuild/protobuf";
import { type Event, EventSchema } from "../../gen/opal/mesh/v1/event_pb.js";

export interface EventWindowLimits {
  maxEvents: number;
  maxBytes: number;
}

export interface EventWindowOptions<T> extends EventWindowLimits {
  positionOf: (item: T) => bigint;
  /** The size counted against `maxBytes` (e.g. the serialized event). */
  sizeOf: (item: T) => number;
  /**
   * A log whose positions have no gaps (the broadcaster's): an item that does not follow
   * the end restarts the window there. Otherwise (the distributor's, which may see a log
   * with gaps) any later position is taken and earlier ones are ignored.
   */
  contiguous?: boolean;
  /** The error `read` throws for a position older than the window (the log's own; a RangeError by default). */
  notRetained?: (after: bigint, firstRetained: bigint) => Error;
}

interface Slot<T> {
  item: T;
  position: bigint;
  size: number;
}

/** How many emptied slots may lead the array before it is compacted. */
const COMPACT_AFTER = 4096;

export class EventWindow<T> {
  // slots[offset..] are held, oldest first; the offset avoids O(n) shifts, and the slots
  // before it are emptied (undefined) so what they held is freed.
  private slots: Array<Slot<T> | undefined> = [];
  private offset = 0;
  private startPosition = 0n;
  private endPosition = 0n;
  private heldBytes = 0;
  private waiters: Array<() => void> = [];

  constructor(private readonly options: EventWindowOptions<T>) {}

  get limits(): EventWindowLimits {
    return { maxEvents: this.options.maxEvents, maxBytes: this.options.maxBytes };
  }

  /** Every log event after this position (up to `end`) is held. */
  get start(): bigint {
    return this.startPosition;
  }

  /** The newest position held (where the window starts, when empty). */
  get end(): bigint {
    return this.endPosition;
  }

  /** The oldest position a reader may still get from here (end + 1 when empty). */
  get firstRetained(): bigint {
    return this.startPosition + 1n;
  }

  get size(): number {
    return this.slots.length - this.offset;
  }

  get bytes(): number {
    return this.heldBytes;
  }

  /** Forgets everything: the window restarts, empty, at `position` (a new log, a gap). */
  reset(position: bigint): void {
    this.slots = [];
    this.offset = 0;
    this.heldBytes = 0;
    this.startPosition = position;
    this.endPosition = position;
  }

  /** The next event of the log; false (ignored) when it is not after the end. */
  append(item: T): boolean {
    const position = this.options.positionOf(item);
    if (this.options.contiguous === true && position !== this.endPosition + 1n) this.reset(position - 1n);
    else if (position <= this.endPosition) return false;
    const size = this.options.sizeOf(item);
    this.slots.push({ item, position, size });
    this.heldBytes += size;
    this.endPosition = position;
    this.trim();
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
    return true;
  }

  /**
   * Puts older events in front: every log event in (from, this.start], in order. Refused
   * (false) when the window moved meanwhile (reset) so the two parts would not join.
   */
  prepend(from: bigint, joinsAt: bigint, items: readonly T[]): boolean {
    if (joinsAt !== this.startPosition || from > joinsAt) return false;
    const older = items
      .map((item) => ({ item, position: this.options.positionOf(item), size: this.options.sizeOf(item) }))
      .filter((slot) => slot.position > from && slot.position <= joinsAt);
    if (this.options.contiguous === true && older.some((slot, index) => slot.position !== from + 1n + BigInt(index))) return false;
    this.slots = [...older, ...this.slots.slice(this.offset)];
    this.offset = 0;
    this.heldBytes += older.reduce((sum, slot) => sum + slot.size, 0);
    this.startPosition = from;
    this.trim();
    return true;
  }

  /**
   * Up to `limit` held events after `position`, oldest first; undefined when the window
   * does not reach back to it, or `position` is beyond the end.
   */
  after(position: bigint, limit = Number.POSITIVE_INFINITY): T[] | undefined {
    if (position < this.startPosition || position > this.endPosition) return undefined;
    const first = this.indexAfter(position);
    const last = Math.min(this.slots.length, first + limit);
    const items: T[] = [];
    for (let index = first; index < last; index++) items.push((this.slots[index] as Slot<T>).item);
    return items;
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
   * Every held event after `after`, then each one appended, until the signal aborts.
   * Throws `notRetained` when `after` (or this reader, falling behind) leaves the window.
   */
  async *read(after: bigint, signal: AbortSignal): AsyncGenerator<T> {
    let cursor = after;
    while (!signal.aborted) {
      if (cursor < this.startPosition) throw this.notRetained(cursor);
      const batch = this.after(cursor, 1024) ?? [];
      if (batch.length === 0) {
        await this.waitForAppend(signal);
        continue;
      }
      for (const item of batch) {
        yield item;
        cursor = this.options.positionOf(item);
      }
    }
  }

  private notRetained(after: bigint): Error {
    if (this.options.notRetained !== undefined) return this.options.notRetained(after, this.firstRetained);
    return new RangeError(`position ${after} is no longer held; the oldest held position is ${this.firstRetained}`);
  }

  /** The index of the first held slot with a position after `position` (positions ascend). */
  private indexAfter(position: bigint): number {
    let low = this.offset;
    let high = this.slots.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if ((this.slots[middle] as Slot<T>).position <= position) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  private trim(): void {
    while (this.size > 0 && (this.size > this.options.maxEvents || this.heldBytes > this.options.maxBytes)) {
      const dropped = this.slots[this.offset] as Slot<T>;
      this.slots[this.offset] = undefined;
      this.offset++;
      this.heldBytes -= dropped.size;
      this.startPosition = dropped.position;
    }
    if (this.offset === this.slots.length) {
      this.slots = [];
      this.offset = 0;
    } else if (this.offset > COMPACT_AFTER && this.offset * 2 > this.slots.length) {
      this.slots = this.slots.slice(this.offset);
      this.offset = 0;
    }
  }
}

/**
 * A window of a log's own events, as the broadcaster holds them: positions without gaps,
 * each counted by its serialized size.
 */
export function logEventWindow(limits: EventWindowLimits, notRetained?: (after: bigint, firstRetained: bigint) => Error): EventWindow<Event> {
  return new EventWindow<Event>({
    ...limits,
    positionOf: (event) => event.position,
    sizeOf: (event) => toBinary(EventSchema, event).byteLength,
    contiguous: true,
    ...(notRetained === undefined ? {} : { notRetained }),
  });
}

/**
 * The newest `capacity` strings added, for "seen before?" checks (update ids a publisher
 * may retry). Evicts the oldest through a ring of its own: taking a Set's first value after
 * many deletes walks every deleted slot until V8 compacts the table, which made the
 * client's duplicate check its top self time at thousands of events a second.
 */
export class RecentSet {
  private readonly members = new Set<string>();
  private readonly ring: string[];
  private next = 0;

  constructor(private readonly capacity: number) {
    this.ring = new Array<string>(capacity);
  }

  has(value: string): boolean {
    return this.members.has(value);
  }

  /** Adds `value` (once: adding a member again changes nothing), evicting the oldest past the capacity. */
  add(value: string): void {
    if (this.members.has(value)) return;
    const evicted = this.ring[this.next];
    if (evicted !== undefined) this.members.delete(evicted);
    this.ring[this.next] = value;
    this.next = (this.next + 1) % this.capacity;
    this.members.add(value);
  }

  get size(): number {
    return this.members.size;
  }
}

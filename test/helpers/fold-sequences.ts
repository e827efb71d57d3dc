/**
 * Seeded random logs for checking the snapshot's fold against a real OPA
 * (test/snapshot-fold.test.ts): events of 1–3 inline entries mixing PUT, PATCH and DELETE
 * at overlapping paths (shallow and deep, a PUT above earlier writes, PATCHes under
 * DELETEs, PUTs through scalars that OPA refuses, array appends and inserts), over a few
 * topic sets with hierarchical ones, and now and then a scope redefinition whose baseline
 * is a small entry list. Only the last redefinition brings a baseline: a late client
 * writes the current baseline once, so earlier ones would differ by design, not by fold.
 */
import { create } from "@bufbuild/protobuf";
import { type DataSourceEntry, DataSourceEntrySchema, SaveMethod } from "../../gen/opal/mesh/v1/data_pb.js";
import { type Event, EventSchema } from "../../gen/opal/mesh/v1/event_pb.js";

/** What entries are addressed to; "a" covers "a/x". */
export const TOPIC_SETS: readonly string[][] = [["a"], ["a/x"], ["b"], ["a/x", "b"]];
/** What clients subscribe to. */
export const SUBSCRIPTIONS: readonly string[][] = [["a"], ["a/x"], ["b"], ["a", "b"]];

export interface FoldSequence {
  seed: number;
  events: Event[];
  /** The baseline the scope's last redefinition brought (empty when none). */
  baseline: DataSourceEntry[];
  /** Where a checkpoint is taken and restored (0: never). */
  restoreAt: bigint;
}

/** mulberry32: the same sequence on every run. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const KEYS = ["a", "b", "c"];

class Generator {
  private counter = 0;
  constructor(readonly next: () => number) {}

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)] as T;
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  /** /r or /s, then 0–3 keys; now and then an array index on the way. */
  path(): string {
    const depth = Math.floor(this.next() * this.next() * 4.5);
    const parts = [this.pick(["r", "r", "s"])];
    for (let index = 0; index < depth; index++) parts.push(this.chance(0.06) ? this.pick(["0", "1", "-"]) : this.pick(KEYS));
    return `/${parts.join("/")}`;
  }

  value(depth = 0): unknown {
    const n = ++this.counter;
    const kind = this.next();
    if (kind < 0.3) return n;
    if (kind < 0.4) return `v${n}`;
    if (kind < 0.45) return null;
    if (kind < 0.55) return [n, { k: n }];
    if (depth > 1) return { n };
    const object: Record<string, unknown> = {};
    for (let count = Math.floor(this.next() * 3); count >= 0; count--) object[this.pick([...KEYS, "l"])] = this.value(depth + 1);
    if (this.chance(0.3)) object.l = [n];
    return object;
  }

  operation(): Record<string, unknown> {
    const relative = (): string => (this.chance(0.15) ? "" : `/${[this.pick([...KEYS, "l"]), ...(this.chance(0.3) ? [this.pick(KEYS)] : [])].join("/")}`);
    const choice = this.next();
    if (choice < 0.15) return { op: "add", path: `/l/${this.pick(["-", "-", "0", "1"])}`, value: this.value(2) };
    if (choice < 0.5) return { op: "add", path: relative(), value: this.value(1) };
    if (choice < 0.7) return { op: "replace", path: relative(), value: this.value(1) };
    if (choice < 0.9) return { op: "remove", path: relative() };
    return { op: "remove", path: `/l/${this.pick(["0", "1"])}` };
  }

  entry(topics: readonly string[]): DataSourceEntry {
    const kind = this.next();
    const base = { dstPath: this.path(), topics: [...topics] };
    const json = (value: unknown) => Buffer.from(JSON.stringify(value));
    if (kind < 0.42) return create(DataSourceEntrySchema, { ...base, saveMethod: SaveMethod.PUT, dataJson: json(this.value()) });
    if (kind < 0.6) return create(DataSourceEntrySchema, { ...base, saveMethod: SaveMethod.DELETE });
    if (kind < 0.92) {
      const operations = Array.from({ length: 1 + Math.floor(this.next() * this.next() * 3) }, () => this.operation());
      return create(DataSourceEntrySchema, { ...base, saveMethod: SaveMethod.PATCH, dataJson: json(operations) });
    }
    // Rarer shapes: PATCH [] (creates the ancestors), a tombstone, a refused path, an escaped operation path.
    const rare = this.pick(["ensure", "tombstone", "system", "escaped"]);
    if (rare === "ensure") return create(DataSourceEntrySchema, { ...base, saveMethod: SaveMethod.PATCH, dataJson: json([]) });
    if (rare === "tombstone") return create(DataSourceEntrySchema, { ...base, saveMethod: SaveMethod.PATCH, dataJson: json([{ op: "add", path: "", value: null }, { op: "remove", path: "" }]) });
    if (rare === "system") return create(DataSourceEntrySchema, { ...base, dstPath: "/system/x", saveMethod: SaveMethod.PUT, dataJson: json(this.value()) });
    return create(DataSourceEntrySchema, { ...base, saveMethod: SaveMethod.PATCH, dataJson: json([{ op: "add", path: "/a~1b", value: this.value(1) }]) });
  }
}

export function foldSequence(seed: number, length: number): FoldSequence {
  const generator = new Generator(random(seed));
  const events: Event[] = [];
  const redefinitions = generator.chance(0.4) ? 1 + Math.floor(generator.next() * 2) : 0;
  const points = new Set(Array.from({ length: redefinitions }, () => 2 + Math.floor(generator.next() * (length - 3))));
  for (let position = 1n; position <= BigInt(length); position++) {
    if (points.has(Number(position))) {
      events.push(create(EventSchema, { position, topics: ["default:scope"], payload: { case: "scopeChanged", value: { scopeId: "default" } } }));
      continue;
    }
    const entries = Array.from({ length: 1 + Math.floor(generator.next() * generator.next() * 3) }, () => generator.entry(generator.pick(TOPIC_SETS)));
    events.push(create(EventSchema, { position, topics: [...new Set(entries.flatMap((entry) => entry.topics))], payload: { case: "dataUpdate", value: { id: `u${position}`, entries } } }));
  }
  const baseline = redefinitions === 0 ? [] : Array.from({ length: 1 + Math.floor(generator.next() * 3) }, () => generator.entry(generator.pick(TOPIC_SETS)));
  const restoreAt = generator.chance(0.25) ? BigInt(1 + Math.floor(generator.next() * length)) : 0n;
  return { seed, events, baseline, restoreAt };
}

/** The positions of the scope's redefinitions, in order. */
export function redefinitions(sequence: FoldSequence): bigint[] {
  return sequence.events.filter((event) => event.payload.case === "scopeChanged").map((event) => event.position);
}

/** Readable events for a failure message. */
export function describeEvents(sequence: FoldSequence): string {
  const entry = (item: DataSourceEntry) => `${SaveMethod[item.saveMethod]} ${item.dstPath} [${item.topics.join(",")}] ${item.dataJson === undefined ? "" : Buffer.from(item.dataJson).toString()}`;
  const lines = sequence.events.map((event) => (event.payload.case === "dataUpdate" ? `${event.position}: ${event.payload.value.entries.map(entry).join(" | ")}` : `${event.position}: scope redefined`));
  return [...lines, `baseline: ${sequence.baseline.map(entry).join(" | ") || "none"}`, `restored at: ${sequence.restoreAt}`].join("\n");
}

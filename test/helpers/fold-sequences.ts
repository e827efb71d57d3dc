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
import { seededRandom } from "./seeded-random.js";

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


const KEYS = ["a", "b", "c"];

class Generator {
  private counter = 0;
  private recent: string[][] = [];
  /** Where documents were written around a redefinition. */
  private readonly redefined: string[][] = [];
  constructor(
    readonly next: () => number,
    /** How often a path written lately is written again (and a PATCH reads it). */
    private readonly reuse: number,
  ) {}

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)] as T;
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  /** Mostly one set, so that entries fold together; the others interleave. */
  topics(): readonly string[] {
    const choice = this.next();
    return TOPIC_SETS[choice < 0.45 ? 0 : choice < 0.65 ? 1 : choice < 0.85 ? 2 : 3] as string[];
  }

  /** /r or /s, then 0–3 keys; now and then an array index on the way; often a path written lately. */
  path(): string[] {
    if (this.recent.length > 0 && this.chance(this.reuse)) return this.pick(this.recent);
    const depth = this.pick([0, 1, 1, 2, 2, 3]);
    const parts = [this.pick(["r", "r", "s"])];
    for (let index = 0; index < depth; index++) parts.push(this.chance(0.06) ? this.pick(["0", "1", "-"]) : this.pick(KEYS));
    this.recent = [parts, ...this.recent.slice(0, 7)];
    return parts;
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

  /** An operation; `near` (a path relative to the PATCH's) makes it read what was written there. */
  operation(near: readonly string[]): Record<string, unknown> {
    const relative = (): string => {
      if (near.length > 0 && this.chance(this.reuse * 2)) return `/${near.join("/")}`;
      return this.chance(0.15) ? "" : `/${[this.pick([...KEYS, "l"]), ...(this.chance(0.5) ? [this.pick(KEYS)] : [])].join("/")}`;
    };
    const choice = this.next();
    if (choice < 0.15) return { op: "add", path: `/l/${this.pick(["-", "-", "0", "1"])}`, value: this.value(2) };
    if (choice < 0.5) return { op: "add", path: relative(), value: this.value(1) };
    if (choice < 0.7) return { op: "replace", path: relative(), value: this.value(1) };
    if (choice < 0.9) return { op: "remove", path: relative() };
    return { op: "remove", path: `/l/${this.pick(["0", "1"])}` };
  }

  entry(topics: readonly string[]): DataSourceEntry {
    const kind = this.next();
    const path = this.path();
    const base = { dstPath: `/${path.join("/")}`, topics: [...topics] };
    const json = (value: unknown) => Buffer.from(JSON.stringify(value));
    if (kind < 0.42) return create(DataSourceEntrySchema, { ...base, saveMethod: SaveMethod.PUT, dataJson: json(this.value()) });
    if (kind < 0.6) return create(DataSourceEntrySchema, { ...base, saveMethod: SaveMethod.DELETE });
    if (kind < 0.92) {
      // Often at an ancestor of what was written, reading it and writing elsewhere too.
      const cut = path.length > 1 && this.chance(this.reuse * 1.5) ? 1 + Math.floor(this.next() * (path.length - 1)) : path.length;
      const operations = Array.from({ length: 1 + Math.floor(this.next() * 3) }, () => this.operation(path.slice(cut)));
      return create(DataSourceEntrySchema, { ...base, dstPath: `/${path.slice(0, cut).join("/")}`, saveMethod: SaveMethod.PATCH, dataJson: json(operations) });
    }
    // Rarer shapes: PATCH [] (creates the ancestors), a tombstone, a refused path, an escaped operation path.
    const rare = this.pick(["ensure", "tombstone", "system", "escaped", "invalid"]);
    // Not JSON: refused by the store (the server refuses it at publish; a producer writing to Kafka may not).
    if (rare === "invalid") return create(DataSourceEntrySchema, { ...base, saveMethod: SaveMethod.PUT, dataJson: Buffer.from('{"a":') });
    if (rare === "ensure") return create(DataSourceEntrySchema, { ...base, saveMethod: SaveMethod.PATCH, dataJson: json([]) });
    if (rare === "tombstone") return create(DataSourceEntrySchema, { ...base, saveMethod: SaveMethod.PATCH, dataJson: json([{ op: "add", path: "", value: null }, { op: "remove", path: "" }]) });
    if (rare === "system") return create(DataSourceEntrySchema, { ...base, dstPath: "/system/x", saveMethod: SaveMethod.PUT, dataJson: json(this.value()) });
    return create(DataSourceEntrySchema, { ...base, saveMethod: SaveMethod.PATCH, dataJson: json([{ op: "add", path: "/a~1b", value: this.value(1) }]) });
  }

  /** A baseline entry, mostly where the log wrote lately: writes the fold must not move across. */
  /** A document before a redefinition and a write into it after (the baseline is made to write there). */
  aroundRedefinition(): { before: DataSourceEntry; after: DataSourceEntry } {
    const path = [this.pick(["r", "s"]), this.pick(KEYS)];
    this.redefined.push(path);
    const topics = [...this.topics()];
    const json = (value: unknown) => Buffer.from(JSON.stringify(value));
    const before = create(DataSourceEntrySchema, { dstPath: `/${path.join("/")}`, topics, saveMethod: SaveMethod.PUT, dataJson: json({ [this.pick(KEYS)]: this.value(1) }) });
    const key = this.pick(KEYS);
    const after = this.chance(0.5)
      ? create(DataSourceEntrySchema, { dstPath: `/${path.join("/")}`, topics, saveMethod: SaveMethod.PATCH, dataJson: json([{ op: this.pick(["replace", "remove", "add"]), path: `/${key}`, value: this.value(1) }]) })
      : create(DataSourceEntrySchema, { dstPath: `/${[...path, key].join("/")}`, topics, saveMethod: this.chance(0.5) ? SaveMethod.DELETE : SaveMethod.PUT, dataJson: json(this.value(1)) });
    return { before, after };
  }

  baselineEntry(): DataSourceEntry {
    const path = this.redefined.length > 0 && this.chance(0.6) ? this.pick(this.redefined) : this.recent.length > 0 && this.chance(0.7) ? this.pick(this.recent) : this.path();
    const topics = [...this.topics()];
    const json = (value: unknown) => Buffer.from(JSON.stringify(value));
    const choice = this.next();
    if (choice < 0.3) return create(DataSourceEntrySchema, { dstPath: `/${path.join("/")}`, topics, saveMethod: SaveMethod.PUT, dataJson: json(this.value()) });
    if (choice < 0.55) return create(DataSourceEntrySchema, { dstPath: `/${[...path, this.pick(KEYS)].join("/")}`, topics, saveMethod: SaveMethod.PUT, dataJson: json(this.value(1)) });
    const operations = [{ op: this.pick(["add", "replace"]), path: `/${this.pick(KEYS)}`, value: this.value(1) }, ...(this.chance(0.5) ? [{ op: "add", path: `/${this.pick(["x", "y"])}`, value: this.value(1) }] : [])];
    return create(DataSourceEntrySchema, { dstPath: `/${path.join("/")}`, topics, saveMethod: SaveMethod.PATCH, dataJson: json(operations) });
  }

  /**
   * Where folding into a document goes wrong when a rule is missing: a document (now and
   * then not JSON), then writes into it of the same topics — through its arrays, at its
   * own path, below what is not there.
   */
  intoDocument(): DataSourceEntry[] {
    const json = (value: unknown) => Buffer.from(JSON.stringify(value));
    const at = [this.pick(["r", "s"]), ...Array.from({ length: Math.floor(this.next() * 3) }, () => this.pick(KEYS))];
    const topics = [...this.topics()];
    const entry = (path: readonly string[], saveMethod: SaveMethod, dataJson?: Uint8Array) => create(DataSourceEntrySchema, { dstPath: `/${path.join("/")}`, topics, saveMethod, ...(dataJson === undefined ? {} : { dataJson }) });
    const document = { l: [1, { k: 2 }], [this.pick(KEYS)]: this.value(1) };
    const entries = [entry(at, SaveMethod.PUT, this.chance(0.15) ? Buffer.from('{"l":[1') : json(document))];
    for (let count = 1 + Math.floor(this.next() * 3); count > 0; count--) {
      const below = [...at, ...(this.chance(0.6) ? ["l", this.pick(["0", "1", "-", "5"])] : this.chance(0.5) ? [this.pick(KEYS)] : [])];
      const choice = this.next();
      if (choice < 0.3) entries.push(entry(below, SaveMethod.DELETE));
      else if (choice < 0.55) entries.push(entry(below, SaveMethod.PUT, json(this.value(1))));
      else if (choice < 0.85) entries.push(entry(at, SaveMethod.PATCH, json([this.operation(["l", this.pick(["0", "1", "-"])])])));
      else entries.push(entry(at, SaveMethod.PATCH, json(this.interfering())));
    }
    return entries;
  }

  /** Operations OPA's store does not apply as JSON Patch says in one transaction (value-fold.ts), or that remove the document itself. */
  interfering(): Array<Record<string, unknown>> {
    const key = `/${this.pick(KEYS)}`;
    return this.pick([
      [{ op: "add", path: key, value: null }, { op: "remove", path: key }],
      [{ op: "add", path: key, value: this.value(1) }, { op: "replace", path: key, value: 1 }],
      [{ op: "remove", path: key }, { op: "add", path: key, value: null }],
      [{ op: "add", path: "/l/-", value: 3 }, { op: "remove", path: "/l/1" }],
      [{ op: "remove", path: "" }],
      [{ op: "replace", path: "", value: { [this.pick(KEYS)]: 1 } }, { op: "remove", path: key }],
    ]);
  }

  /**
   * Where dropping goes wrong when a rule is missing, in a few consecutive entries: a
   * write under q, maybe a PATCH at q's ancestor that reads near q (under it, or one of
   * q's ancestors) and writes beside it, maybe another write under q, then a PUT or
   * DELETE at q whose topics cover the writes' (or not quite).
   */
  motif(): DataSourceEntry[] {
    const json = (value: unknown) => Buffer.from(JSON.stringify(value));
    const q = [this.pick(["r", "s"]), ...Array.from({ length: 1 + Math.floor(this.next() * 2) }, () => this.pick(KEYS))];
    const under = () => [...q, this.pick(KEYS), ...(this.chance(0.4) ? [this.pick(KEYS)] : [])];
    const topics = this.topics();
    const entry = (path: readonly string[], saveMethod: SaveMethod, of = topics) =>
      create(DataSourceEntrySchema, { dstPath: `/${path.join("/")}`, topics: [...of], saveMethod, ...(saveMethod === SaveMethod.DELETE ? {} : { dataJson: json(this.value()) }) });
    const below = under();
    const entries = [entry(below, this.chance(0.8) ? SaveMethod.PUT : SaveMethod.DELETE)];
    if (this.chance(0.7)) {
      const at = q.slice(0, 1 + Math.floor(this.next() * (q.length - 1)));
      // Under q (what the first write made), or one of q's ancestors (what its ensureParents made).
      const near = this.chance(0.5) ? below.slice(at.length) : [...q.slice(at.length, at.length + Math.floor(this.next() * (q.length - at.length))), "z"];
      const read = { op: near.at(-1) === "z" ? "add" : this.pick(["add", "replace", "remove"]), path: `/${near.join("/")}`, value: this.value(1) };
      const beside = { op: "add", path: `/${this.pick(["x", "y"])}`, value: this.value(1) };
      entries.push(create(DataSourceEntrySchema, { dstPath: `/${at.join("/")}`, topics: [...this.topics()], saveMethod: SaveMethod.PATCH, dataJson: json(this.chance(0.5) ? [read, beside] : [beside, read]) }));
    }
    if (this.chance(0.5)) entries.push(entry(under(), SaveMethod.PUT));
    entries.push(entry(q, this.chance(0.4) ? SaveMethod.PUT : SaveMethod.DELETE, this.chance(0.8) ? topics : this.topics()));
    return entries;
  }
}

export function foldSequence(seed: number, length: number): FoldSequence {
  // Odd seeds write the same paths again and again, even ones scatter more.
  const generator = new Generator(seededRandom(seed), seed % 2 === 1 ? 0.35 : 0);
  const events: Event[] = [];
  const redefinitions = generator.chance(0.5) ? 1 + Math.floor(generator.next() * 2) : 0;
  const points = new Set(Array.from({ length: redefinitions }, () => 2 + Math.floor(generator.next() * (length - 3))));
  for (let position = 1n; position <= BigInt(length); position++) {
    if (points.has(Number(position))) {
      // A document just before the redefinition and a write into it just after, with the
      // baseline likely writing there too: folding across the baseline point shows.
      const around = generator.chance(0.7) ? generator.aroundRedefinition() : undefined;
      if (around !== undefined) events.push(update(position++, [around.before]));
      events.push(create(EventSchema, { position, topics: ["default:scope"], payload: { case: "scopeChanged", value: { scopeId: "default" } } }));
      if (around !== undefined) events.push(update(++position, [around.after]));
      continue;
    }
    const motif = generator.chance(0.1) ? generator.motif() : generator.chance(0.1) ? generator.intoDocument() : [];
    for (const entry of motif.slice(0, -1)) events.push(update(position++, [entry]));
    const entries = motif.length > 0 ? motif.slice(-1) : Array.from({ length: 1 + Math.floor(generator.next() * generator.next() * 3) }, () => generator.entry(generator.topics()));
    events.push(update(position, entries));
  }
  // A motif may have run over a planned redefinition.
  const redefined = events.some((event) => event.payload.case === "scopeChanged");
  const baseline = !redefined ? [] : Array.from({ length: 1 + Math.floor(generator.next() * 3) }, () => generator.baselineEntry());
  const restoreAt = generator.chance(0.25) ? BigInt(1 + Math.floor(generator.next() * length)) : 0n;
  return { seed, events, baseline, restoreAt };
}

function update(position: bigint, entries: DataSourceEntry[]): Event {
  return create(EventSchema, { position, topics: [...new Set(entries.flatMap((entry) => entry.topics))], payload: { case: "dataUpdate", value: { id: `u${position}`, entries } } });
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

/**
 * Inline updates mixing PUT, PATCH and DELETE over a few overlapping paths (a PUT at /a
 * after writes at /a/b, a PATCH under a DELETE, a PUT through a deleted parent), from a
 * seeded generator, with a model of what an ordered replay leaves in OPA.
 *
 * The model follows the client's writes (services/client/data/data-transaction.ts): a PUT
 * creates the missing parents of its path; a DELETE of what is not there changes nothing;
 * a PATCH creates the missing parents of its path and applies its operations under it as
 * JSON Patch (add needs the parent, replace and remove the target); an entry the store
 * refuses changes nothing and the next ones still apply. A few entries are refused on
 * purpose, so a late client must leave out exactly what a connected one left out.
 */
import { isDeepStrictEqual } from "node:util";
import { seededRandom } from "./seeded-random.js";

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Doc = { [key: string]: Json };
type Operation = { op: "add" | "replace" | "remove"; path: string; value?: Json };
export interface MixedEntry {
  dst_path: string;
  save_method?: "PUT" | "PATCH" | "DELETE";
  data?: Json | Operation[];
  topics?: string[];
}

const KEYS = ["a", "b", "c"];
const LEAVES = ["x", "y", "z"];


const isDoc = (value: Json | undefined): value is Doc => typeof value === "object" && value !== null && !Array.isArray(value);
const parts = (path: string): string[] => path.split("/").filter((part) => part !== "");

export class MixedUpdates {
  /** The ordered replay of every entry generated so far, from an empty root. */
  readonly state: Doc = {};
  private readonly next: () => number;
  private counter = 0;

  /** `root`: where the writes go (e.g. "/conv"); `topics`: the entries' topics. */
  constructor(
    seed: number,
    readonly root = "/conv",
    private readonly topics: string[] = ["policy_data"],
  ) {
    this.next = seededRandom(seed);
  }

  private pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)] as T;
  }

  private path(shallowest = 1): string {
    const depth = shallowest + Math.floor(this.next() * (4 - shallowest));
    return `${this.root}/${[this.pick(KEYS), this.pick(LEAVES), this.pick(KEYS)].slice(0, depth).join("/")}`;
  }

  /** Documents high up, mostly scalars deep down: most writes land, some go through or over others. */
  private value(depth = 3): Json {
    const n = this.counter;
    const kind = this.next();
    if (kind < 0.9 - depth * 0.25) return { [this.pick(LEAVES)]: { [this.pick(KEYS)]: n }, [this.pick(KEYS)]: n };
    if (kind < 0.75) return n;
    if (kind < 0.9) return `v${n}`;
    return { n };
  }

  /** One update of 1–3 entries; the model applies it as it is made. */
  update(): { id: string; entries: MixedEntry[] } {
    this.counter++;
    const count = 1 + Math.floor(this.next() * this.next() * 3);
    const entries: MixedEntry[] = [];
    for (let index = 0; index < count; index++) {
      const entry = this.entry();
      this.apply(entry);
      entries.push({ ...entry, topics: this.topics });
    }
    return { id: `mixed-${this.root.slice(1)}-${this.counter}`, entries };
  }

  /** The paths under the root that hold a value now (every level). */
  paths(): string[] {
    const found: string[] = [];
    const walk = (value: Json | undefined, path: string): void => {
      if (!isDoc(value)) return;
      for (const [key, child] of Object.entries(value)) {
        found.push(`${path}/${key}`);
        walk(child, `${path}/${key}`);
      }
    };
    walk(this.read(this.root), this.root);
    return found;
  }

  read(path: string): Json | undefined {
    let value: Json | undefined = this.state;
    for (const part of parts(path)) value = isDoc(value) ? value[part] : undefined;
    return value;
  }

  private entry(): MixedEntry {
    const kind = this.next();
    if (kind < 0.5) {
      const path = this.path();
      return { dst_path: path, data: this.value(parts(path).length - 1) };
    }
    if (kind < 0.65) return { dst_path: this.path(this.next() < 0.1 ? 1 : 2), save_method: "DELETE" };
    // PATCH: mostly at a document that exists (valid), sometimes under one that does not.
    const existing = this.paths().filter((path) => isDoc(this.read(path)));
    const at = existing.length > 0 && this.next() < 0.85 ? this.pick(existing) : this.path();
    const target = this.read(at);
    const keys = isDoc(target) ? Object.keys(target) : [];
    // Under a document that is not there (deleted, or never written): refused, or made by the patch itself.
    if (target === undefined && this.next() < 0.5) return { dst_path: at, save_method: "PATCH", data: [{ op: "add", path: "", value: { made: this.counter } }] };
    const operations: Operation[] = [];
    for (let count = 1 + Math.floor(this.next() * 2); count > 0; count--) {
      const choice = this.next();
      if (choice < 0.5 || keys.length === 0) operations.push({ op: "add", path: `/${this.pick([...LEAVES, ...KEYS])}`, value: this.value() });
      else if (choice < 0.75) operations.push({ op: "replace", path: `/${this.pick(keys)}`, value: this.value() });
      else if (choice < 0.95) operations.push({ op: "remove", path: `/${this.pick(keys)}` });
      else operations.push({ op: "replace", path: "/missing", value: 0 });
    }
    // Now and then the whole document at once, before the keyed operations (which then apply to it).
    if (this.next() < 0.1) return { dst_path: at, save_method: "PATCH", data: [{ op: "add", path: "", value: { replaced: this.counter } }, { op: "add", path: `/${this.pick(LEAVES)}`, value: this.counter }] };
    return { dst_path: at, save_method: "PATCH", data: operations };
  }

  /** Applies one entry to the model, all or nothing (as the store applies one entry). */
  private apply(entry: MixedEntry): void {
    const draft = structuredClone(this.state);
    if (!applyTo(draft, entry)) return;
    for (const key of Object.keys(this.state)) delete this.state[key];
    Object.assign(this.state, draft);
  }
}

/** false when the store would refuse the entry (nothing of it applied). */
function applyTo(root: Doc, entry: MixedEntry): boolean {
  const path = parts(entry.dst_path);
  const parent = (segments: string[], create: boolean): Doc | undefined => {
    let node: Doc = root;
    for (const part of segments) {
      const child: Json | undefined = node[part];
      if (child === undefined && create) node = node[part] = {};
      else if (isDoc(child)) node = child;
      else return undefined;
    }
    return node;
  };
  const last = path.at(-1) as string;
  if (entry.save_method === "DELETE") {
    const holder = parent(path.slice(0, -1), false);
    if (holder !== undefined) delete holder[last];
    return true;
  }
  if (entry.save_method !== "PATCH") {
    const holder = parent(path.slice(0, -1), true);
    if (holder === undefined) return false;
    holder[last] = structuredClone(entry.data as Json);
    return true;
  }
  if (parent(path.slice(0, -1), true) === undefined) return false;
  for (const operation of entry.data as Operation[]) {
    const target = [...path, ...parts(operation.path)];
    const holder = parent(target.slice(0, -1), false);
    const key = target.at(-1) as string;
    if (holder === undefined) return false;
    if (operation.op !== "add" && !(key in holder)) return false;
    if (operation.op === "remove") delete holder[key];
    else holder[key] = structuredClone(operation.value as Json);
  }
  return true;
}

/** Whether two replays agree (a helper for asserting the model against a client). */
export function sameJson(a: unknown, b: unknown): boolean {
  return isDeepStrictEqual(a, b);
}

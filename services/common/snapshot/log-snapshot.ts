/**
 * The fold of the log (types.ts says what it promises). This version keeps every data
 * entry of a scope in log order, dropping only what is certainly dead: an earlier entry
 * wholly replaced by a later PUT at the same path or an ancestor, for the same topics, with
 * no PATCH of the scope and no baseline point in between (a PATCH may depend on what the
 * earlier entry created; a baseline may sit on it). A PUT creates its own ancestors, so
 * nothing the dropped entry made is lost. Anything else is kept: replay stays exact, at
 * the cost of size (bounded by OPAL_MESH_SNAPSHOT_MAX_BYTES). Folding PATCHes into
 * documents, for a smaller snapshot, is the next step (issue 13).
 */
import { clone, create } from "@bufbuild/protobuf";
import { type DataSourceEntry, DataSourceEntrySchema, SaveMethod } from "../../../gen/opal/mesh/v1/data_pb.js";
import type { Event } from "../../../gen/opal/mesh/v1/event_pb.js";
import { SnapshotItemSchema, SnapshotScopeSchema } from "../../../gen/opal/mesh/v1/snapshot_pb.js";
import { entrySize } from "./chunks.js";
import { DEFAULT_SCOPE, scopeOfTopic, unscopeTopic } from "../scopes/scoped-topics.js";
import { anyTopicCovered } from "../topics.js";
import type { ScopeView, Snapshot, SnapshotExport, SnapshotItem, SnapshotScope, SnapshotStats } from "./types.js";

interface ScopeFold {
  meta: SnapshotScope;
  items: SnapshotItem[];
}

function isUnder(path: string, ancestor: string): boolean {
  const a = ancestor === "/" ? "" : ancestor.replace(/\/+$/, "");
  return a === "" || path === a || path.startsWith(`${a}/`);
}

/** A segment that may name an array element: an `add` there inserts, moving its siblings, so such writes are never dropped. */
function mayIndexArray(path: string): boolean {
  return path.split("/").some((segment) => /^(\d+|-)$/.test(segment));
}

function sameTopics(a: readonly string[], b: readonly string[]): boolean {
  const set = new Set(a);
  return a.length === b.length && b.every((topic) => set.has(topic));
}

export class LogSnapshot implements Snapshot {
  private at = 0n;
  private readonly scopes = new Map<string, ScopeFold>();
  private entries = 0;
  private bytes = 0;

  get position(): bigint {
    return this.at;
  }

  get stats(): SnapshotStats {
    return { position: this.at, entries: this.entries, bytes: this.bytes, scopes: this.scopes.size };
  }

  fold(event: Event): void {
    if (event.position <= this.at || event.payload.case === undefined) return;
    this.at = event.position;
    switch (event.payload.case) {
      case "policyChanged":
        this.scope(event.payload.value.scope || DEFAULT_SCOPE).meta.policyHash = event.payload.value.hash;
        return;
      case "scopeChanged":
        if (!event.payload.value.deleted) this.scope(event.payload.value.scopeId).meta.baselinePosition = event.position;
        return;
      case "dataUpdate":
        for (const entry of event.payload.value.entries) {
          for (const scope of new Set(entry.topics.map(scopeOfTopic))) this.add(scope, event.position, entry);
        }
    }
  }

  growthOf(events: readonly Event[]): number {
    let bytes = 0;
    for (const event of events) if (event.payload.case === "dataUpdate") for (const entry of event.payload.value.entries) bytes += entrySize(entry);
    return bytes;
  }

  view(scope: string, topics: readonly string[]): ScopeView {
    const fold = this.scopes.get(scope);
    const baseline = fold?.meta.baselinePosition ?? 0n;
    const mine = (fold?.items ?? []).filter((item) => anyTopicCovered(topics, item.entry?.topics ?? []));
    return { scope, position: this.at, beforeBaseline: mine.filter((item) => item.position < baseline), afterBaseline: mine.filter((item) => item.position > baseline), policyHash: fold?.meta.policyHash ?? "" };
  }

  export(): SnapshotExport {
    const scopes = [...this.scopes.values()];
    return { position: this.at, scopes: scopes.map((fold) => fold.meta), items: scopes.flatMap((fold) => fold.items) };
  }

  restore(exported: SnapshotExport): void {
    this.reset(exported.position);
    for (const meta of exported.scopes) this.scopes.set(meta.scope, { meta: clone(SnapshotScopeSchema, meta), items: [] });
    for (const item of exported.items) {
      const fold = this.scope(item.scope);
      fold.items.push(item);
      this.count(item, 1);
    }
  }

  reset(position: bigint): void {
    this.at = position;
    this.scopes.clear();
    this.entries = 0;
    this.bytes = 0;
  }

  private scope(id: string): ScopeFold {
    let fold = this.scopes.get(id);
    if (fold === undefined) {
      fold = { meta: create(SnapshotScopeSchema, { scope: id }), items: [] };
      this.scopes.set(id, fold);
    }
    return fold;
  }

  private count(item: SnapshotItem, sign: 1 | -1): void {
    this.entries += sign;
    this.bytes += sign * (item.entry === undefined ? 0 : entrySize(item.entry));
  }

  /** The entry as the scope's clients receive it (its topics only, unscoped), appended; what it certainly replaces, dropped. */
  private add(scope: string, position: bigint, entry: DataSourceEntry): void {
    const fold = this.scope(scope);
    const copy = clone(DataSourceEntrySchema, entry);
    copy.topics = entry.topics.filter((topic) => scopeOfTopic(topic) === scope).map(unscopeTopic);
    const isPut = copy.saveMethod === SaveMethod.PUT || copy.saveMethod === SaveMethod.UNSPECIFIED;
    if (isPut && !mayIndexArray(copy.dstPath)) {
      // Walk back until a PATCH or the baseline point: earlier entries may have been read by those.
      for (let index = fold.items.length - 1; index >= 0; index--) {
        const item = fold.items[index] as SnapshotItem;
        const earlier = item.entry as DataSourceEntry;
        if (item.position <= fold.meta.baselinePosition || earlier.saveMethod === SaveMethod.PATCH) break;
        if (isUnder(earlier.dstPath, copy.dstPath) && !mayIndexArray(earlier.dstPath) && sameTopics(earlier.topics, copy.topics)) {
          fold.items.splice(index, 1);
          this.count(item, -1);
        }
      }
    }
    const item = create(SnapshotItemSchema, { position, scope, entry: copy });
    fold.items.push(item);
    this.count(item, 1);
  }
}

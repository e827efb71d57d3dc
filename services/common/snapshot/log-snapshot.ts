/**
 * The fold of the log (types.ts says what it promises). This version keeps every data
 * entry of a scope in log order, dropping only what is certainly dead: an earlier PUT or
 * DELETE at the same path, for the same topics, replaced by a later PUT with no PATCH of
 * the scope and no baseline point in between (a PATCH may depend on what the earlier entry
 * made; a baseline may sit on it). A PUT creates its own ancestors, so nothing the dropped
 * entry made is lost. Anything else is kept: replay stays exact, at the cost of size
 * (bounded by OPAL_MESH_SNAPSHOT_MAX_BYTES). Dropping under ancestors and folding PATCHes
 * into documents, for a smaller snapshot, is the next step (issue 13).
 *
 * It runs on the fan-out's hot path (every event, before dispatch): O(1) per entry, with a
 * path index and dropped items compacted away in bulk, and entries share the event's bytes.
 */
import { clone, create } from "@bufbuild/protobuf";
import { type DataSourceEntry, DataSourceEntrySchema, SaveMethod } from "../../../gen/opal/mesh/v1/data_pb.js";
import type { Event } from "../../../gen/opal/mesh/v1/event_pb.js";
import { SnapshotItemSchema, SnapshotScopeSchema } from "../../../gen/opal/mesh/v1/snapshot_pb.js";
import { entrySize } from "./chunks.js";
import { DEFAULT_SCOPE, scopeOfTopic, unscopeTopic } from "../scopes/scoped-topics.js";
import { anyTopicCovered } from "../topics.js";
import type { ScopeView, Snapshot, SnapshotExport, SnapshotItem, SnapshotScope, SnapshotStats } from "./types.js";

/** Dropped items' data bytes past which a scope's items are compacted whatever their count. */
const COMPACT_DEAD_BYTES = 16 * 1024 * 1024;

interface ScopeFold {
  meta: SnapshotScope;
  /** In log order; dropped ones stay until the next compaction (`dead` counts them). */
  items: SnapshotItem[];
  dropped: WeakSet<SnapshotItem>;
  dead: number;
  /** The data bytes the dropped items still hold until the compaction lets them go. */
  deadBytes: number;
  /** The newest item at each path, while it may still be dropped. */
  latest: Map<string, SnapshotItem>;
  /** The newest PATCH's position: nothing before it is dropped. */
  barrier: bigint;
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
    const mine = (fold === undefined ? [] : live(fold)).filter((item) => anyTopicCovered(topics, item.entry?.topics ?? []));
    return { scope, position: this.at, beforeBaseline: mine.filter((item) => item.position < baseline), afterBaseline: mine.filter((item) => item.position > baseline), policyHash: fold?.meta.policyHash ?? "" };
  }

  export(): SnapshotExport {
    const scopes = [...this.scopes.values()];
    return { position: this.at, scopes: scopes.map((fold) => fold.meta), items: scopes.flatMap(live) };
  }

  restore(exported: SnapshotExport): void {
    this.reset(exported.position);
    for (const meta of exported.scopes) this.scope(meta.scope).meta = clone(SnapshotScopeSchema, meta);
    // Restored items are never dropped: what happened between them is not known here.
    for (const item of exported.items) {
      const fold = this.scope(item.scope);
      fold.items.push(item);
      fold.barrier = item.position;
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
      fold = { meta: create(SnapshotScopeSchema, { scope: id }), items: [], dropped: new WeakSet(), dead: 0, deadBytes: 0, latest: new Map(), barrier: 0n };
      this.scopes.set(id, fold);
    }
    return fold;
  }

  private count(item: SnapshotItem, sign: 1 | -1): void {
    this.entries += sign;
    this.bytes += sign * (item.entry === undefined ? 0 : entrySize(item.entry));
  }

  /** The entry as the scope's clients receive it (its topics only, unscoped; the event's bytes shared), appended; what it certainly replaces, dropped. */
  private add(scope: string, position: bigint, entry: DataSourceEntry): void {
    const fold = this.scope(scope);
    const mine = create(DataSourceEntrySchema, { ...entry, topics: entry.topics.filter((topic) => scopeOfTopic(topic) === scope).map(unscopeTopic) });
    const method = mine.saveMethod === SaveMethod.UNSPECIFIED ? SaveMethod.PUT : mine.saveMethod;
    const item = create(SnapshotItemSchema, { position, scope, entry: mine });
    if (method === SaveMethod.PATCH) {
      fold.barrier = position;
      fold.latest.clear();
    } else if (!mayIndexArray(mine.dstPath)) {
      const earlier = fold.latest.get(mine.dstPath);
      const barrier = fold.barrier > fold.meta.baselinePosition ? fold.barrier : fold.meta.baselinePosition;
      if (method === SaveMethod.PUT && earlier !== undefined && earlier.position > barrier && sameTopics(earlier.entry?.topics ?? [], mine.topics)) {
        fold.dropped.add(earlier);
        fold.dead++;
        fold.deadBytes += earlier.entry === undefined ? 0 : entrySize(earlier.entry);
        this.count(earlier, -1);
      }
      fold.latest.set(mine.dstPath, item);
    }
    fold.items.push(item);
    this.count(item, 1);
    // In bulk (amortised O(1) per entry), and before dropped documents pile up: a few
    // large values overwritten over and over must not keep every old one alive.
    if ((fold.dead > 1024 && fold.dead * 2 > fold.items.length) || fold.deadBytes > COMPACT_DEAD_BYTES) {
      fold.items = live(fold);
      fold.dropped = new WeakSet();
      fold.dead = 0;
      fold.deadBytes = 0;
    }
  }
}

function live(fold: ScopeFold): SnapshotItem[] {
  return fold.dead === 0 ? [...fold.items] : fold.items.filter((item) => !fold.dropped.has(item));
}

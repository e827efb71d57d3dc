/**
 * The fold of one scope's data entries: a compacted log whose replay, from any state,
 * leaves what replaying every entry leaves, for every set of topics a client may hold.
 *
 * Each new entry F is, in this order:
 * 1. folded into an inline document E (same topics, F's path at or below E's, nothing
 *    newer than E overlapping F's region): emulating OPA on E's document says what F
 *    does. Applied: E's document changes and F is gone. Certainly refused: F is gone (it
 *    changes nothing). Unsure: F stays an item. Nothing overlapping was written between,
 *    so moving F's effect back to E's place in the order changes nothing.
 * 2. otherwise appended, and when it is a PUT or DELETE at a path q, what it replaces
 *    under q is dropped (overwrite-rules.ts says when that is exact).
 * Nothing at or before the scope's baseline point (or a restored snapshot's position) is
 * folded into or dropped: a baseline written between may read it.
 *
 * Cost per entry: O(depth) plus the entry's own size, plus what it drops (paid once per
 * item); the walks that look for what to drop stop after a few items they keep.
 */
import { create } from "@bufbuild/protobuf";
import type { DataSourceEntry } from "../../../gen/opal/mesh/v1/data_pb.js";
import { type SnapshotItem, type SnapshotScope, SnapshotScopeSchema } from "../../../gen/opal/mesh/v1/snapshot_pb.js";
import { anyTopicCovered } from "../topics.js";
import { type PatchStep, foldDelete, foldPatch, foldPut, parseExact, type FoldOutcome } from "./value-fold.js";
import { entrySize } from "./chunks.js";
import { type EntryShape, shapeOf } from "./entry-shape.js";
import { FoldItem } from "./fold-item.js";
import { blocks, coveredBy, type DropMode, isCreator } from "./overwrite-rules.js";
import { PathTree } from "./path-tree.js";

/** Dropped items' data bytes past which the items are compacted whatever their count. */
const COMPACT_DEAD_BYTES = 16 * 1024 * 1024;

/** Items at one ancestor examined for blockers; older ones count as blocking. */
const ANCESTOR_SCAN = 16;
/** Items under a written path looked at and kept, before the walk gives up (what it did not see stays). */
const KEPT_SCAN = 32;

/** The snapshot's totals, shared by its scopes. */
export interface Totals {
  entries: number;
  bytes: number;
}

export class ScopeFold {
  meta: SnapshotScope;
  /** In log order; dropped ones stay until the next compaction (`dead` counts them). */
  private items: FoldItem[] = [];
  private dead = 0;
  /** The data bytes dropped items still hold until the compaction lets them go. */
  private deadBytes = 0;
  /** The items after the barrier, by path: only they can be folded into or dropped. */
  private tree = new PathTree<FoldItem>();
  private barrier = 0n;
  private seq = 0;
  private readonly topicKeys = new Map<string, string>();

  constructor(
    scope: string,
    private readonly totals: Totals,
  ) {
    this.meta = create(SnapshotScopeSchema, { scope });
  }

  /** A baseline point: everything before it stays as it is. */
  freeze(position: bigint): void {
    if (position > this.barrier) this.barrier = position;
    this.tree = new PathTree();
  }

  /**
   * An item of a restored snapshot, appended as it is. Those after the baseline point are
   * folded into and dropped as the snapshot that exported them would have: the items are
   * a log whose replay is the log's, so folding on from them is exact, and the same.
   */
  restoreItem(item: SnapshotItem): void {
    if (item.entry === undefined) return;
    if (this.meta.baselinePosition > this.barrier) this.freeze(this.meta.baselinePosition);
    const { shape } = shapeOf(item.entry);
    const restored = new FoldItem(this.seq++, item.position, this.meta.scope, item.entry, shape, this.topicKey(item.entry.topics));
    this.count(restored, 1);
    if (item.position > this.barrier) this.tree.add(shape.anchor as string[], restored);
  }

  /** `entry` (the scope's topics only, unscoped) of the event at `position`. */
  add(position: bigint, entry: DataSourceEntry): void {
    const { shape, steps } = shapeOf(entry);
    const topicKey = this.topicKey(entry.topics);
    // Nothing is made for an entry folded into a document (the hot path's common case).
    if (position > this.barrier && this.intoDocument(entry, shape, topicKey, steps)) return;
    const item = new FoldItem(this.seq++, position, this.meta.scope, entry, shape, topicKey);
    this.count(item, 1);
    if (position <= this.barrier) return;
    this.tree.add(shape.anchor as string[], item);
    this.dropReplaced(item);
    // In bulk (amortised O(1) per entry), and before dropped documents pile up: a few large
    // values overwritten over and over must not keep every old one alive (stream-memory case).
    if ((this.dead > 1024 && this.dead * 2 > this.items.length) || this.deadBytes > COMPACT_DEAD_BYTES) {
      this.items = this.items.filter((kept) => !kept.dropped);
      this.dead = 0;
      this.deadBytes = 0;
    }
  }

  /** What a client subscribed to `topics` replays, split at the baseline point. */
  view(topics: readonly string[]): { before: SnapshotItem[]; after: SnapshotItem[] } {
    const baseline = this.meta.baselinePosition;
    const before: SnapshotItem[] = [];
    const after: SnapshotItem[] = [];
    for (const item of this.items) {
      if (item.dropped || !anyTopicCovered(topics, item.topics)) continue;
      if (item.position < baseline) this.handOut(item, before);
      else if (item.position > baseline) this.handOut(item, after);
    }
    return { before, after };
  }

  exportItems(): SnapshotItem[] {
    const items: SnapshotItem[] = [];
    for (const item of this.items) if (!item.dropped) this.handOut(item, items);
    return items;
  }

  /** A document written back as it is handed out is measured again: the totals follow. */
  private handOut(item: FoldItem, list: SnapshotItem[]): void {
    const bytes = item.bytes;
    item.handOut(list);
    this.totals.bytes += item.bytes - bytes;
  }

  private topicKey(topics: readonly string[]): string {
    const key = topics.length === 1 ? (topics[0] as string) : JSON.stringify([...new Set(topics)].sort());
    let interned = this.topicKeys.get(key);
    if (interned === undefined) {
      interned = key;
      this.topicKeys.set(key, key);
    }
    return interned;
  }

  private count(item: FoldItem, sign: 1 | -1): void {
    if (sign === 1) this.items.push(item);
    this.totals.entries += sign;
    this.totals.bytes += sign * item.bytes;
  }

  /** Changes an item in place, keeping the totals. */
  private change(item: FoldItem, how: () => void): void {
    const { bytes } = item;
    how();
    this.totals.bytes += item.bytes - bytes;
  }

  private drop(item: FoldItem): void {
    item.dropped = true;
    this.dead++;
    this.deadBytes += item.bytes;
    this.tree.remove(item.shape.anchor, item);
    this.count(item, -1);
  }

  /** Step 1: F into the newest item overlapping its region, when that is a document of the same topics. */
  private intoDocument(entry: DataSourceEntry, shape: EntryShape, topicKey: string, steps: readonly PatchStep[] | undefined): boolean {
    if (shape.refusable || !(shape.kind === "doc" || shape.kind === "delete" || shape.kind === "patch" || shape.kind === "ensure")) return false;
    const { onPath: target, seq } = this.tree.newest(shape.anchor);
    if (target === undefined || target.seq !== seq || !target.foldable || target.topicKey !== topicKey) return false;
    const below = shape.path.slice(target.shape.path.length);
    // A DELETE of the document itself: step 2 (its ancestors stay); of a DELETE, nothing more to do.
    if (below.length === 0 && shape.kind === "delete") return target.absent;
    // A PUT of the document's own path replaces it (step 2 drops it): nothing to parse.
    if (below.length === 0 && shape.kind === "doc") return false;
    const document = target.slot();
    if (document === undefined) return false;
    const { bytes } = target;
    let outcome: FoldOutcome;
    if (shape.kind === "delete") {
      outcome = foldDelete(document, below);
    } else if (shape.kind === "doc") {
      const value = entry.dataJson === undefined ? undefined : parseExact(entry.dataJson);
      if (value === undefined) return false;
      outcome = foldPut(document, below, value.value);
    } else {
      if (steps === undefined) return false;
      outcome = foldPatch(document, below, steps);
    }
    if (outcome === "unsure") return false;
    if (outcome === "applied") {
      target.changed(entrySize(entry));
      this.totals.bytes += target.bytes - bytes;
    }
    return true;
  }

  /** Step 2: what F, a PUT or DELETE at q, makes unnecessary under q. */
  private dropReplaced(item: FoldItem): void {
    const { shape } = item;
    const q = shape.path;
    if (shape.refusable || q.length === 0 || shape.anchor.length !== q.length) return;
    let mode: DropMode;
    if (shape.kind === "doc" || shape.kind === "url-put") mode = "overwrite";
    else if (shape.kind === "delete") mode = q.length === 1 ? "overwrite" : "delete-deep";
    else return;
    // A URL PUT replaces the same path only, as it always did (its fetch is the source's).
    const samePathOnly = shape.kind === "url-put";
    const { floor, overwriteBlockers } = this.blockers(q, mode);
    const dropped: FoldItem[] = [];
    const creators = new Map<string, FoldItem[]>();
    let kept = 0;
    let certain: boolean | undefined;
    for (const earlier of this.tree.subtreeAbove(q, floor)) {
      if (earlier === item) continue;
      // An inline document OPA refuses (not JSON) replaces nothing: read only when something could go.
      certain ??= shape.kind !== "doc" || item.isValidDocument();
      if (!certain) return;
      const covered = earlier.shape.kind !== "wild" && coveredBy(earlier, item) && (!samePathOnly || earlier.shape.path.length === q.length);
      if (covered && (mode === "overwrite" || earlier.shape.kind === "delete")) {
        dropped.push(earlier);
      } else if (covered && isCreator(earlier)) {
        const group = creators.get(earlier.topicKey) ?? [];
        group.push(earlier);
        creators.set(earlier.topicKey, group);
        if (overwriteBlockers.some((seq) => seq > earlier.seq)) kept++;
      } else {
        kept++;
      }
      if (kept >= KEPT_SCAN) break;
    }
    for (const earlier of dropped) this.drop(earlier);
    for (const group of creators.values()) this.ensureInstead(group, q, floor, overwriteBlockers);
  }

  /**
   * Of creators under q (one topic set), the newest becomes PATCH [] at q, and the ones
   * with no PATCH reading near q between them and it go.
   */
  private ensureInstead(group: readonly FoldItem[], q: readonly string[], floor: number, overwriteBlockers: readonly number[]): void {
    const newest = group.reduce((left, right) => (right.seq > left.seq ? right : left));
    const bound = Math.max(floor, ...overwriteBlockers.filter((seq) => seq < newest.seq));
    for (const earlier of group) if (earlier !== newest && earlier.seq > bound) this.drop(earlier);
    if (newest.shape.kind === "ensure" && newest.shape.path.length === q.length) return;
    this.tree.remove(newest.shape.anchor, newest);
    this.change(newest, () => newest.becomeEnsure(q));
    this.tree.add(newest.shape.anchor as string[], newest);
  }

  /**
   * What the items at q's strict ancestors allow: nothing at or below `floor` may be
   * dropped; `overwriteBlockers` are the PATCHes that read anything overlapping q (for a
   * DELETE's creators, which must not have one between them and their PATCH []).
   */
  private blockers(q: readonly string[], mode: DropMode): { floor: number; overwriteBlockers: number[] } {
    let floor = -1;
    const overwriteBlockers: number[] = [];
    for (const own of this.tree.ancestors(q)) {
      for (let index = own.length - 1, seen = 0; index >= 0; index--, seen++) {
        const between = own[index] as FoldItem;
        if (between.seq <= floor) break;
        if (seen >= ANCESTOR_SCAN) {
          floor = between.seq;
          break;
        }
        const readsNear = blocks(between, q, "overwrite");
        if (readsNear) overwriteBlockers.push(between.seq);
        if (mode === "overwrite" ? readsNear : blocks(between, q, "delete-deep")) floor = Math.max(floor, between.seq);
      }
    }
    return { floor, overwriteBlockers };
  }
}

/**
 * When a later PUT or DELETE at q makes an earlier item E under q unnecessary.
 *
 * Compare the replay with E (world 1) and without it (world 2), from any state. Right
 * after E they differ only below q and in q's strict ancestors, which E's ensureParents
 * may have created (world 1 has them as objects, world 2 may lack them). A PUT at q makes
 * the worlds equal again — it creates the missing ancestors, and when it fails (through a
 * non-object ancestor, which both worlds share) nothing below that ancestor exists in
 * either — so E can go, unless something between E and the PUT behaved differently
 * because of E in a way the PUT does not erase. PUTs and DELETEs between never do (a PUT
 * reads nothing; a DELETE of an ancestor leaves it gone in both worlds; ensureParents
 * creates what is missing either way). Writes hanging below q, or away from q's ancestors,
 * never read what E changed outside their own region. What can differ is a PATCH at one of
 * q's ancestors: it reads (an add its target's parent, a remove or replace its target) a
 * path E changed, and, all or nothing, also writes outside q. Such a PATCH blocks.
 *
 * A DELETE at q does not create q's ancestors, so the containers E's ensureParents made
 * would be lost with E: DELETEs under q (they create nothing) are dropped, and of the
 * items that do create ("creators": a valid inline PUT, a tombstone, PATCH []) the newest
 * of each topic set becomes PATCH [] at q, which creates exactly those ancestors, fails
 * exactly when the creator does, and writes nothing else. After it the worlds differ only
 * below q, and a PATCH that reads below q blocks (its success, hence the ancestors its own
 * ensureParents makes, may differ); before it, a PATCH reading anything overlapping q
 * does. At depth 1 there are no ancestors to create, and a DELETE drops like a PUT.
 *
 * Not here: the topic rule (`coveredBy`) and the baseline rule (nothing is dropped across
 * a scope's baseline point: the baseline's own entries, which the log does not know, may
 * read what E wrote).
 */
import { topicCovers } from "../topics.js";
import type { EntryShape } from "./entry-shape.js";
import { type FoldItem, isUnder, overlaps } from "./fold-item.js";

export type DropMode = "overwrite" | "delete-deep";

/** Paths a PATCH reads that earlier entries can change: not the ancestors its own ensureParents creates. */
export function patchReads(shape: EntryShape): Array<readonly string[]> {
  const reads: Array<readonly string[]> = [];
  // ensureParents through something that may be an array: what it creates there is uncertain.
  if (shape.anchor.length < shape.path.length) reads.push(shape.anchor);
  for (const { op, target } of shape.ops) {
    const read = op === "add" ? target.slice(0, -1) : target;
    // The root always exists; what ensureParents makes for it is no read.
    if (read.length === 0 || (read.length < shape.path.length && isUnder(shape.path, read))) continue;
    reads.push(read);
  }
  return reads;
}

/** Whether `between` (anchored at a strict ancestor of q, between E and the write at q) keeps E. */
export function blocks(between: FoldItem, q: readonly string[], mode: DropMode): boolean {
  const { shape } = between;
  if (shape.kind === "wild") return true;
  if (shape.kind !== "patch" && shape.kind !== "ensure") return false;
  const reads = patchReads(shape);
  if (mode === "delete-deep") return reads.some((read) => isUnder(read, q));
  if (shape.ops.every(({ target }) => isUnder(target, q))) return false;
  return reads.some((read) => overlaps(read, q));
}

/** Every client that applies `earlier` applies `later`: each of its topics has one of `later`'s at or below it. */
export function coveredBy(earlier: FoldItem, later: FoldItem): boolean {
  return earlier.topics.every((topic) => later.topics.some((other) => topicCovers(topic, other)));
}

/**
 * Creates q's missing ancestors exactly when PATCH [] at q does, and writes nothing else
 * outside q: a valid inline document or tombstone, or PATCH [], that no client refuses.
 * A URL PUT may fail to fetch, a PATCH on its operations: they are not creators.
 */
export function isCreator(item: FoldItem): boolean {
  if (item.shape.refusable) return false;
  return item.shape.kind === "ensure" || item.isValidDocument();
}

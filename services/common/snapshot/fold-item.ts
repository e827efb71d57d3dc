/**
 * One item of a scope's compacted log: an entry at its place in the replay order. An
 * inline PUT ("doc") keeps its document parsed once something is folded into it, and
 * writes it back as JSON only when a view or an export asks (or when its size has to be
 * measured again). What is handed out is rebuilt then, never changed afterwards: a view
 * streamed at a client's pace stays put.
 *
 * A document deleted after its PUT (a tombstone) is handed out as two entries, PATCH [] at
 * its path (the ancestors the PUT created stay) and DELETE of it. Not one PATCH [add ""
 * null, remove ""]: OPA's in-memory store, within one transaction, leaves null behind
 * when a path added as null is removed (and refuses the removal of any other value added
 * in the same transaction).
 */
import { create } from "@bufbuild/protobuf";
import { type DataSourceEntry, DataSourceEntrySchema, SaveMethod } from "../../../gen/opal/mesh/v1/data_pb.js";
import { type SnapshotItem, SnapshotItemSchema } from "../../../gen/opal/mesh/v1/snapshot_pb.js";
import { entrySize } from "./chunks.js";
import { type EntryShape, shapeOf } from "./entry-shape.js";
import type { Sequenced } from "./path-tree.js";
import { ABSENT, parseExact, type Slot } from "./value-fold.js";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class FoldItem implements Sequenced {
  dropped = false;
  /** The entry as it stands: the one received, or what the item was rewritten to. */
  private current: DataSourceEntry;
  /** The document has changes `current` does not hold yet. */
  private dirty = false;
  private handedOut: SnapshotItem[] | undefined;
  /** PATCH [] before a tombstone's DELETE (undefined when not a tombstone, or at depth 1). */
  private ensure: DataSourceEntry | undefined;
  /** A doc's parsed document: undefined until first needed; null when it cannot be folded into. */
  private slot: Slot | null | undefined;
  /** A doc's JSON is valid (OPA takes it): undefined until asked. */
  private valid: boolean | undefined;
  /** `bytes` as last measured exactly; between write-backs `bytes` is an upper bound. */
  private measured: number;
  /** The entry's size (chunks.ts entrySize), as the snapshot's limit counts it. */
  bytes: number;

  constructor(
    readonly seq: number,
    readonly position: bigint,
    readonly scope: string,
    entry: DataSourceEntry,
    public shape: EntryShape,
    /** The topic set as a key: items fold together only when the same clients apply them. */
    readonly topicKey: string,
  ) {
    this.current = entry;
    this.bytes = entrySize(entry);
    this.measured = this.bytes;
  }

  get topics(): readonly string[] {
    return this.current.topics;
  }

  get entry(): DataSourceEntry {
    if (this.dirty) this.writeBack();
    return this.current;
  }

  /** The document was deleted: what is handed out removes it. */
  get tombstone(): boolean {
    return this.slot?.value === ABSENT;
  }

  /** How many entries it hands out. */
  get count(): number {
    return this.tombstone && this.shape.path.length > 1 ? 2 : 1;
  }

  /** As the view and the export hand it out (the same objects until the item changes). */
  snapshotItems(): readonly SnapshotItem[] {
    if (this.handedOut === undefined) {
      const entry = this.entry;
      const item = (of: DataSourceEntry) => create(SnapshotItemSchema, { position: this.position, scope: this.scope, entry: of });
      this.handedOut = this.ensure === undefined ? [item(entry)] : [item(this.ensure), item(entry)];
    }
    return this.handedOut;
  }

  /** An inline document that later writes below it can be folded into: below the root, no array index on its path, refused by no client. */
  get foldable(): boolean {
    const { kind, path, anchor, refusable } = this.shape;
    return kind === "doc" && !refusable && path.length > 0 && anchor.length === path.length;
  }

  /** OPA takes the entry's document (a tombstone, or valid JSON): it then fails only through a non-object ancestor. */
  isValidDocument(): boolean {
    if (this.shape.kind !== "doc") return false;
    if (this.slot !== undefined && this.slot !== null) return true;
    if (this.valid === undefined) {
      try {
        JSON.parse(decoder.decode(this.current.dataJson));
        this.valid = true;
      } catch {
        this.valid = false;
      }
    }
    return this.valid;
  }

  /** The document to fold into (parsed now if need be), or undefined when folding into it is not exact. */
  document(): Slot | undefined {
    this.slot ??= this.current.dataJson === undefined ? null : (parseExact(this.current.dataJson) ?? null);
    return this.slot ?? undefined;
  }

  /**
   * The document changed (by at most `grownBy` bytes). Once the bound has run well past the
   * last measure it is measured again, so the limit counts what is held at a cost in
   * proportion to what was folded in.
   */
  changed(grownBy: number): void {
    this.dirty = true;
    this.handedOut = undefined;
    this.bytes += grownBy;
    if (this.bytes - this.measured > Math.max(this.measured, 4096)) this.writeBack();
  }

  /** A DELETE at the document's own path: it becomes a tombstone (no need to read it). */
  removeDocument(): void {
    if (this.tombstone) return;
    this.slot = { value: ABSENT };
    this.handedOut = undefined;
    this.writeBack();
  }

  /** Rewritten as PATCH [] at `path` (the ancestors it creates, nothing else). */
  becomeEnsure(path: readonly string[]): void {
    this.current = ensureEntry(path, this.current.topics);
    this.shape = shapeOf(this.current).shape;
    this.ensure = undefined;
    this.slot = undefined;
    this.dirty = false;
    this.handedOut = undefined;
    this.bytes = entrySize(this.current);
    this.measured = this.bytes;
  }

  private writeBack(): void {
    const { tombstone } = this;
    const { topics, dstPath } = this.current;
    this.current = create(DataSourceEntrySchema, { topics, dstPath, ...(tombstone ? { saveMethod: SaveMethod.DELETE } : { saveMethod: SaveMethod.PUT, dataJson: encoder.encode(JSON.stringify(this.slot?.value)) }) });
    this.ensure = this.count === 2 ? ensureEntry(this.shape.path, topics) : undefined;
    this.dirty = false;
    this.bytes = entrySize(this.current) + (this.ensure === undefined ? 0 : entrySize(this.ensure));
    this.measured = this.bytes;
  }
}

/** PATCH [] at `path`: creates the path's missing ancestors, nothing else. */
function ensureEntry(path: readonly string[], topics: readonly string[]): DataSourceEntry {
  return create(DataSourceEntrySchema, { topics: [...topics], dstPath: `/${path.join("/")}`, saveMethod: SaveMethod.PATCH, dataJson: encoder.encode("[]") });
}

/** `path` equals `prefix` or lies below it. */
export function isUnder(path: readonly string[], prefix: readonly string[]): boolean {
  if (prefix.length > path.length) return false;
  for (let index = 0; index < prefix.length; index++) if (path[index] !== prefix[index]) return false;
  return true;
}

export function overlaps(left: readonly string[], right: readonly string[]): boolean {
  return isUnder(left, right) || isUnder(right, left);
}

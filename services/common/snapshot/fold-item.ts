/**
 * One item of a scope's compacted log: an entry at its place in the replay order. An
 * inline PUT ("doc") keeps its document parsed once something is folded into it, and
 * writes it back as JSON only when a view or an export asks (or when its size has to be
 * measured again). What is handed out is rebuilt then, never changed afterwards: a view
 * streamed at a client's pace stays put.
 *
 * A DELETE is a document too, an absent one: a write below it folds into it, and it
 * becomes a PUT. (Never one PATCH [add "" null, remove ""] for a deleted document: OPA's
 * in-memory store, within one transaction, leaves null behind when a path added as null
 * is removed.) Nothing else is kept but what the entry says, so a snapshot restored from
 * its export folds on exactly as the one that exported it.
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

/** Only for the documents something was folded into (most items never need it). */
interface DocumentState {
  /** The parsed document (ABSENT for a DELETE); null when it cannot be folded into (it is not written back exactly). */
  slot: Slot | null;
  /** It has changes the handed-out entry does not hold yet. */
  dirty: boolean;
  /** `bytes` as last measured exactly; between write-backs `bytes` is an upper bound. */
  measured: number;
}

export class FoldItem implements Sequenced {
  dropped = false;
  /** The entry at its position, as handed out. */
  private handedOut: SnapshotItem;
  private document: DocumentState | undefined;
  /** A doc's JSON is valid (OPA takes it): undefined until asked. */
  private valid: boolean | undefined;
  /** The entry's size (chunks.ts entrySize), as the snapshot's limit counts it. */
  bytes: number;

  constructor(
    readonly seq: number,
    position: bigint,
    scope: string,
    entry: DataSourceEntry,
    public shape: EntryShape,
    /** The topic set as a key: items fold together only when the same clients apply them. */
    readonly topicKey: string,
  ) {
    this.handedOut = create(SnapshotItemSchema, { position, scope, entry });
    this.bytes = entrySize(entry);
  }

  get position(): bigint {
    return this.handedOut.position;
  }

  get topics(): readonly string[] {
    return (this.handedOut.entry as DataSourceEntry).topics;
  }

  /** The entry as received (or rewritten to; a folded document's changes are not in it until handed out). */
  get entry(): DataSourceEntry {
    return this.handedOut.entry as DataSourceEntry;
  }

  /** Appends what it hands out to `list` (the same object until the item changes). */
  handOut(list: SnapshotItem[]): void {
    const state = this.document;
    if (state?.dirty === true) this.writeBack(state);
    list.push(this.handedOut);
  }

  /** An inline document (or a DELETE: an absent one) that later writes below it can be folded into: below the root, no array index on its path, refused by no client. */
  get foldable(): boolean {
    const { kind, path, anchor, refusable } = this.shape;
    return (kind === "doc" || kind === "delete") && !refusable && path.length > 0 && anchor.length === path.length;
  }

  /** A DELETE (or a document emptied by one): what is at its path afterwards is nothing. */
  get absent(): boolean {
    return this.shape.kind === "delete";
  }

  /**
   * OPA takes the entry's document (valid JSON): it then fails only through a non-object
   * ancestor. Asked when the document replaces another, which was likely
   * written into: what it parses is kept for folding into this one.
   */
  isValidDocument(): boolean {
    if (this.shape.kind !== "doc") return false;
    if (this.document?.slot != null) return true;
    if (this.valid === undefined && this.document === undefined && this.slot() !== undefined) return true;
    if (this.valid === undefined) {
      try {
        JSON.parse(decoder.decode(this.entry.dataJson));
        this.valid = true;
      } catch {
        this.valid = false;
      }
    }
    return this.valid;
  }

  /** The document to fold into (parsed now if need be), or undefined when folding into it is not exact. */
  slot(): Slot | undefined {
    if (this.document === undefined) {
      const { dataJson } = this.entry;
      const slot = this.absent ? { value: ABSENT } : dataJson === undefined ? null : (parseExact(dataJson) ?? null);
      this.document = { slot, dirty: false, measured: this.bytes };
    }
    return this.document.slot ?? undefined;
  }

  /**
   * The document changed (by at most `grownBy` bytes). Once the bound has run well past the
   * last measure it is measured again, so the limit counts what is held at a cost in
   * proportion to what was folded in.
   */
  changed(grownBy: number): void {
    const state = this.document as DocumentState;
    state.dirty = true;
    // A DELETE written into is a document from now on (folding never empties one: value-fold.ts).
    if (this.absent && state.slot?.value !== ABSENT) this.shape = { ...this.shape, kind: "doc" };
    this.bytes += grownBy;
    if (this.bytes - state.measured > Math.max(state.measured, 4096)) this.writeBack(state);
  }

  /** Rewritten as PATCH [] at `path` (the ancestors it creates, nothing else). */
  becomeEnsure(path: readonly string[]): void {
    this.handedOut = this.rebuilt(ensureEntry(path, this.topics));
    this.shape = shapeOf(this.entry).shape;
    this.document = undefined;
    this.bytes = entrySize(this.entry);
  }

  private rebuilt(entry: DataSourceEntry): SnapshotItem {
    return create(SnapshotItemSchema, { position: this.handedOut.position, scope: this.handedOut.scope, entry });
  }

  private writeBack(state: DocumentState): void {
    const { topics, dstPath } = this.entry;
    const removed = state.slot?.value === ABSENT;
    this.handedOut = this.rebuilt(create(DataSourceEntrySchema, { topics, dstPath, ...(removed ? { saveMethod: SaveMethod.DELETE } : { saveMethod: SaveMethod.PUT, dataJson: encoder.encode(JSON.stringify(state.slot?.value)) }) }));
    if (this.absent !== removed) this.shape = { ...this.shape, kind: removed ? "delete" : "doc" };
    state.dirty = false;
    this.bytes = entrySize(this.entry);
    state.measured = this.bytes;
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

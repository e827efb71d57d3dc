/**
 * One JSON Patch of a data commit as it is composed (data-transaction.ts applies it): the
 * containers it creates, what it replaces, and the paths it adds or removes — OPA's
 * one-patch transaction does not end as two patches would when a path added is removed
 * again (or removed and added), so such a write starts the next patch.
 */
import { SaveMethod } from "../../../gen/opal/mesh/v1/data_pb.js";
import { parseJsonBytes } from "../../common/data-entries.js";
import type { PatchOperation } from "../policy-store.js";
import type { EntryWrite } from "./data-transaction.js";

export function isUnder(path: string, prefix: string): boolean {
  return prefix === "" || path === prefix || path.startsWith(`${prefix}/`);
}

/** "/a/b" → "/a/b", "/a" (the pointer and its ancestors, the root left out). */
function selfAndAncestors(path: string): string[] {
  const out: string[] = [];
  for (let end = path.length; end > 0; end = path.lastIndexOf("/", end - 1)) out.push(path.slice(0, end));
  return out;
}

/** Pointers an operation kind touched in a patch, for asking "at, above or below one of them?" in O(depth). */
class TouchedPaths {
  private readonly paths = new Set<string>();
  /** Every touched path's ancestors and itself. */
  private readonly prefixes = new Set<string>();

  add(path: string): void {
    this.paths.add(path);
    for (const prefix of selfAndAncestors(path)) this.prefixes.add(prefix);
  }

  overlaps(path: string): boolean {
    return this.prefixes.has(path) || selfAndAncestors(path).some((prefix) => this.paths.has(prefix));
  }
}

/**
 * Paths whose content a patch replaces or removes, asked "is this path, or one above it,
 * among them?" in O(depth): a batch of 256 events had scanned the whole list per write.
 */
class OverwrittenPaths {
  private readonly paths = new Set<string>();

  add(path: string): void {
    this.paths.add(path);
  }

  has(path: string): boolean {
    return this.paths.has(path);
  }

  get size(): number {
    return this.paths.size;
  }

  /** One of them is strictly above `path` (the root, "", is above every other path). */
  above(path: string): boolean {
    if (path !== "" && this.paths.has("")) return true;
    return selfAndAncestors(path).some((prefix) => prefix !== path && this.paths.has(prefix));
  }

  /** `path` is one of them or below one. */
  covers(path: string): boolean {
    return this.paths.has(path) || this.above(path);
  }
}

/** A patch being composed, with what it will have created or replaced once applied. */
export class PatchPlan {
  readonly operations: PatchOperation[] = [];
  /**
   * OPA applies a patch in one transaction, where a path added and then removed or
   * replaced (or removed, then added) does not end as it does in two patches (a null
   * stays, a value goes, or the patch fails). A write that would do so starts the next
   * patch, so a client writing events in one batch ends where one writing them one by
   * one does (and the log's snapshot, written in one job, where either does).
   */
  private readonly added = new TouchedPaths();
  private readonly removed = new TouchedPaths();
  private recorded = 0;

  /** Notes the operations added since the last call. */
  record(): void {
    for (const operation of this.operations.slice(this.recorded)) (operation.op === "add" ? this.added : this.removed).add(operation.path);
    this.recorded = this.operations.length;
  }

  /** The write's own operations would meet what this patch added or removed (see `added`). */
  collides(targets: ReadonlyArray<{ op: PatchOperation["op"]; path: string }>): boolean {
    return targets.some(({ op, path }) => (op === "add" ? this.removed : this.added).overlaps(path));
  }
  /** Containers this patch creates ({}): known to exist afterwards. */
  readonly created = new Set<string>();
  /** Paths whose content this patch replaces or removes: what is below them is unknown. */
  readonly overwritten = new OverwrittenPaths();
  rootReplaced = false;

  touchesAbove(path: string): boolean {
    return this.rootReplaced || this.overwritten.above(path);
  }
}

/** What a write's own operations address (not the containers made for it): a DELETE removes, a PUT adds, a PATCH's operations as they are. */
export function targetsOf({ entry, data }: EntryWrite, path: string): Array<{ op: PatchOperation["op"]; path: string }> {
  if (entry.saveMethod === SaveMethod.DELETE) return [{ op: "remove", path }];
  if (entry.saveMethod !== SaveMethod.PATCH) return [{ op: "add", path }];
  if (!(data instanceof Uint8Array)) return [];
  try {
    const operations = parseJsonBytes(data) as Array<{ op?: unknown; path?: unknown }>;
    if (!Array.isArray(operations)) return [];
    return operations.flatMap((operation) => (typeof operation.path === "string" && (operation.op === "add" || operation.op === "remove" || operation.op === "replace") ? [{ op: operation.op, path: `${path}${operation.path}` }] : []));
  } catch {
    return []; // not JSON: addEntry says so
  }
}

/**
 * What the fold needs to know of one data entry: where it writes, where its effects can
 * reach (its anchor), what a PATCH reads, and whether it is ordinary enough to reason
 * about. Anything unusual — a URL PATCH (operations unknown until fetched), malformed
 * operations, path segments OPA decodes differently than the client splits them ("%",
 * "." and ".."), operation paths OPA trims or unescapes — is "wild": it reaches
 * everywhere, so nothing is dropped or folded across it, and it is never dropped itself.
 */
import { type DataSourceEntry, SaveMethod } from "../../../gen/opal/mesh/v1/data_pb.js";
import { parseJsonBytes } from "../data-entries.js";
import { ReservedPaths } from "../reserved-paths.js";
import { isArrayish, type PatchStep } from "./value-fold.js";

/**
 * doc: an inline PUT below the root; ensure: PATCH [] (creates the missing ancestors,
 * nothing else); opaque: a PUT or DELETE of the whole root (split or wrapped by the
 * client's settings: never reasoned about).
 */
export type EntryKind = "doc" | "url-put" | "delete" | "patch" | "ensure" | "wild" | "opaque";

export interface PatchRead {
  op: "add" | "remove" | "replace";
  /** Absolute target segments. */
  target: readonly string[];
}

export interface EntryShape {
  kind: EntryKind;
  /** dst_path as the client splits it. */
  path: readonly string[];
  /**
   * Where its effects can reach: the path up to its first segment OPA might read as an
   * array index (an add there inserts, shifting the siblings); the root for wild entries.
   */
  anchor: readonly string[];
  /** Some client may refuse it (OPA's system namespace, a root document with a `system` key). */
  refusable: boolean;
  /** A PATCH's operations (kind "patch"). */
  ops: readonly PatchRead[];
}

/** The shape, and a PATCH's operations with their values as the client sends them (for folding; not kept). */
export interface ShapedEntry {
  shape: EntryShape;
  steps?: readonly PatchStep[];
}

const STRICTEST = ReservedPaths.NONE;
const NOTHING: readonly PatchRead[] = [];

export function segmentsOf(path: string): string[] {
  return path.split("/").filter((segment) => segment !== "");
}

/** Up to (not including) the first arrayish segment; the path itself (same array) when there is none. */
export function anchorOf(path: readonly string[]): readonly string[] {
  const index = path.findIndex(isArrayish);
  return index < 0 ? path : path.slice(0, index);
}

function oddSegment(segment: string): boolean {
  return segment.includes("%") || segment === "." || segment === "..";
}

/** An operation path as OPA resolves it, when that is unambiguous: "" or "/a/b" with plain segments. */
function operationSegments(pointer: unknown): string[] | undefined {
  if (pointer === "") return [];
  if (typeof pointer !== "string" || !pointer.startsWith("/")) return undefined;
  const parts = pointer.slice(1).split("/");
  return parts.every((part) => part !== "" && !part.includes("~") && !oddSegment(part)) ? parts : undefined;
}

function shape(kind: EntryKind, path: readonly string[], refusable: boolean, anchor: readonly string[] = anchorOf(path), ops = NOTHING): EntryShape {
  return { kind, path, anchor, refusable, ops };
}

export function shapeOf(entry: DataSourceEntry): ShapedEntry {
  const path = segmentsOf(entry.dstPath);
  if (path.some(oddSegment)) return { shape: shape("wild", path, true, []) };
  // With no "%", "." or ".." (those are wild), only a first segment "system" is OPA's reserved namespace.
  const pathRefused = path[0] === "system";
  const method = entry.saveMethod === SaveMethod.PATCH ? "PATCH" : entry.saveMethod === SaveMethod.DELETE ? "DELETE" : "PUT";
  if (method !== "PATCH") {
    if (path.length === 0) return { shape: shape("opaque", path, true) };
    if (method === "DELETE") return { shape: shape("delete", path, pathRefused) };
    return { shape: shape(entry.dataJson === undefined ? "url-put" : "doc", path, pathRefused) };
  }
  if (entry.dataJson === undefined) return { shape: shape("wild", path, true, []) };
  let parsed: unknown;
  try {
    // As the client reads it (and it sends each value again as JSON.stringify writes it).
    parsed = parseJsonBytes(entry.dataJson);
  } catch {
    return { shape: shape("wild", path, true, []) };
  }
  if (!Array.isArray(parsed)) return { shape: shape("wild", path, true, []) };
  const refusable = pathRefused || (path.length === 0 && STRICTEST.patchProblem(entry.dstPath, parsed) !== undefined);
  const reads: PatchRead[] = [];
  const steps: PatchStep[] = [];
  for (const operation of parsed as unknown[]) {
    if (typeof operation !== "object" || operation === null) return { shape: shape("wild", path, true, []) };
    const { op, path: pointer, value } = operation as Record<string, unknown>;
    const relative = operationSegments(pointer);
    if ((op !== "add" && op !== "remove" && op !== "replace") || relative === undefined) return { shape: shape("wild", path, true, []) };
    reads.push({ op, target: [...path, ...relative] });
    steps.push({ op, target: relative, value: value ?? null });
  }
  return { shape: shape(steps.length === 0 ? "ensure" : "patch", path, refusable, anchorOf(path), reads), steps };
}

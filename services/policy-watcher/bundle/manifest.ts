/**
 * `.manifest` ordering, as OPAL reads it: one path per line, relative to the manifest's
 * directory; a directory entry pulls in that directory's own `.manifest` (recursively,
 * guarded against cycles). Files the manifests do not name come after, in path order.
 */
import { posix } from "node:path";
import type { PolicyTree } from "../types.js";

const decoder = new TextDecoder();

function lines(bytes: Uint8Array): string[] {
  return decoder
    .decode(bytes)
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"));
}

/** The manifest's order for the files of a tree (only files in `candidates` are returned). */
export function manifestOrder(tree: PolicyTree, candidates: readonly string[], manifestPath = ".manifest"): string[] {
  const wanted = new Set(candidates);
  const ordered: string[] = [];
  const placed = new Set<string>();
  const visitedManifests = new Set<string>();
  const dirs = new Set<string>();
  for (const path of tree.keys()) {
    for (let dir = posix.dirname(path); dir !== "." && !dirs.has(dir); dir = posix.dirname(dir)) dirs.add(dir);
  }

  const visit = (manifest: string): void => {
    if (visitedManifests.has(manifest)) return; // a cycle, or a manifest named twice
    visitedManifests.add(manifest);
    const content = tree.get(manifest);
    if (content === undefined) return;
    const base = posix.dirname(manifest);
    for (const line of lines(content)) {
      const target = posix.normalize(base === "." ? line : posix.join(base, line)).replace(/\/+$/, "");
      if (target === ".." || target.startsWith("../")) continue; // outside the repo
      if (tree.has(target)) {
        if (wanted.has(target) && !placed.has(target)) {
          placed.add(target);
          ordered.push(target);
        }
      } else if (dirs.has(target)) {
        visit(posix.join(target, ".manifest"));
      }
    }
  };

  // The manifest path may name the file, or (as OPAL allows) a directory holding one.
  const start = manifestPath.replace(/^\.\//, "").replace(/\/+$/, "");
  visit(start === "" || start === "." ? ".manifest" : dirs.has(start) ? posix.join(start, ".manifest") : start);
  const rest = candidates.filter((path) => !placed.has(path)).sort();
  return [...ordered, ...rest];
}

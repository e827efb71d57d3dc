/**
 * Where a replay of the log starts from empty. A snapshot is the log's entries folded, to
 * be written from an empty store; written on top of what OPA still holds (a resync, an
 * OPA that took writes from a superseded session meanwhile) an append or a write under a
 * deleted path would land twice. So the baseline job that writes a snapshot first removes
 * every top-level document the log or the baseline writes to: nothing the log wrote can
 * live anywhere else. Kept: /system (OPA's and the status document's) and the documents a
 * policy bundle's data owns.
 */
import { create } from "@bufbuild/protobuf";
import { type DataSourceEntry, DataSourceEntrySchema, SaveMethod } from "../../../gen/opal/mesh/v1/data_pb.js";

function topSegment(path: string): string | undefined {
  return path.split("/").find((segment) => segment !== "");
}

/** DELETEs of the top-level documents `entries` write to, minus `kept` (bundle data roots, e.g. "a/b" keeps "a"). */
export function replayClearing(entries: readonly DataSourceEntry[], kept: readonly string[]): DataSourceEntry[] {
  const keep = new Set(["system", ...kept.map(topSegment).filter((root) => root !== undefined)]);
  const roots = new Set<string>();
  for (const entry of entries) {
    const root = topSegment(entry.dstPath);
    if (root !== undefined && !keep.has(root)) roots.add(root);
  }
  return [...roots].map((root) => create(DataSourceEntrySchema, { dstPath: `/${root}`, saveMethod: SaveMethod.DELETE }));
}

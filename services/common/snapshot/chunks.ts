/**
 * Snapshot items in parts of bounded size, so a large snapshot travels as many modest
 * messages (under any gRPC message limit, and written at the reader's pace) instead of one
 * message as large as the snapshot.
 */
import type { DataSourceEntry } from "../../../gen/opal/mesh/v1/data_pb.js";

/** About the bytes an entry takes on the wire: its inline data dominates. */
export function entrySize(entry: DataSourceEntry): number {
  return 64 + (entry.dataJson?.byteLength ?? 0) + entry.configJson.byteLength + entry.url.length + entry.dstPath.length;
}

export const SNAPSHOT_PART_BYTES = 512 * 1024;

/** `items` in consecutive groups of at most `maxBytes` (an item larger than that goes alone). */
export function* inParts<T>(items: readonly T[], sizeOf: (item: T) => number, maxBytes = SNAPSHOT_PART_BYTES): Generator<T[]> {
  let part: T[] = [];
  let bytes = 0;
  for (const item of items) {
    const size = sizeOf(item);
    if (part.length > 0 && bytes + size > maxBytes) {
      yield part;
      part = [];
      bytes = 0;
    }
    part.push(item);
    bytes += size;
  }
  if (part.length > 0) yield part;
}

/**
 * The snapshot's checkpoints as records of the compacted `<events topic>-snapshot` topic.
 * One checkpoint is the snapshot's export at a position, written under keys no other
 * checkpoint uses, then named by a manifest:
 *
 *   checkpoint/<generation>/header   SnapshotHeader (position, log id, scopes, sizes)
 *   checkpoint/<generation>/<i>      part i of the items: a slice of ≤ ~512 KiB of one
 *                                    SnapshotItems encoding (an item may span parts: one
 *                                    PUT document with its PATCHes folded in can outgrow
 *                                    any Kafka message)
 *   manifest/<generation>            JSON: generation, position, log id, part count, and
 *                                    the SHA-256 of the header and parts in order
 *
 * The manifest is written only once every part is acknowledged, so a crash at any point
 * leaves a complete earlier checkpoint; a reader takes the manifest with the highest
 * position whose parts are all there and hash right.
 */
import { createHash } from "node:crypto";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { type SnapshotHeader, SnapshotHeaderSchema, type SnapshotItem, SnapshotItemSchema, SnapshotItemsSchema } from "../../gen/opal/mesh/v1/snapshot_pb.js";
import type { SnapshotExport } from "../common/snapshot/types.js";

export const PART_BYTES = 512 * 1024;
const FORMAT = 1;

export interface CheckpointRecord {
  key: string;
  value: Buffer;
}

export interface Manifest {
  format: number;
  generation: string;
  position: bigint;
  logId: string;
  parts: number;
  /** Of the header and parts, in order. */
  sha256: string;
  /** Bytes of the header and parts. */
  bytes: number;
  entries: number;
  writtenAtUnixMs: number;
}

export interface EncodedCheckpoint {
  manifest: Manifest;
  /** The header and parts: written (and acknowledged) before the manifest. */
  records: CheckpointRecord[];
  manifestRecord: CheckpointRecord;
}

export interface CheckpointContent {
  exported: SnapshotExport;
  /** Why the snapshot misses events, carried on so a restart does not hide it; undefined when complete. */
  incomplete: string | undefined;
  manifest: Manifest;
}

export class CheckpointError extends Error {
  override readonly name = "CheckpointError";
}

export const manifestKey = (generation: string): string => `manifest/${generation}`;
export const headerKey = (generation: string): string => `checkpoint/${generation}/header`;
export const partKey = (generation: string, index: number): string => `checkpoint/${generation}/${index}`;

/** The generation a record's key belongs to; undefined for keys this layout does not use. */
export function generationOf(key: string): string | undefined {
  const manifest = /^manifest\/(.+)$/.exec(key);
  if (manifest !== null) return manifest[1];
  return /^checkpoint\/(.+)\/(?:header|\d+)$/.exec(key)?.[1];
}

export function encodeCheckpoint(
  exported: SnapshotExport,
  context: { generation: string; logId: string; incomplete: string | undefined; bytes: number; now?: number },
  partBytes = PART_BYTES,
): EncodedCheckpoint {
  const { generation } = context;
  const header = create(SnapshotHeaderSchema, {
    position: exported.position,
    logId: context.logId,
    scopes: exported.scopes,
    entries: BigInt(exported.items.length),
    bytes: BigInt(context.bytes),
    incomplete: context.incomplete ?? "",
  });
  const records: CheckpointRecord[] = [{ key: headerKey(generation), value: Buffer.from(toBinary(SnapshotHeaderSchema, header)) }];
  const items = toBinary(SnapshotItemsSchema, create(SnapshotItemsSchema, { items: exported.items }));
  const view = Buffer.from(items.buffer, items.byteOffset, items.byteLength);
  for (let start = 0, index = 0; start < view.length; start += partBytes, index++) {
    records.push({ key: partKey(generation, index), value: view.subarray(start, start + partBytes) });
  }
  const hash = createHash("sha256");
  for (const record of records) hash.update(record.value);
  const manifest: Manifest = {
    format: FORMAT,
    generation,
    position: exported.position,
    logId: context.logId,
    parts: records.length - 1,
    sha256: hash.digest("hex"),
    bytes: records.reduce((sum, record) => sum + record.value.length, 0),
    entries: exported.items.length,
    writtenAtUnixMs: context.now ?? Date.now(),
  };
  return { manifest, records, manifestRecord: { key: manifestKey(generation), value: Buffer.from(JSON.stringify({ ...manifest, position: manifest.position.toString() })) } };
}

export function parseManifest(key: string, value: Buffer): Manifest {
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(value.toString("utf8")) as Record<string, unknown>;
  } catch (error) {
    throw new CheckpointError(`manifest ${key} is not JSON: ${(error as Error).message}`);
  }
  const text = (name: string): string => {
    const field = json[name];
    if (typeof field !== "string") throw new CheckpointError(`manifest ${key} has no ${name}`);
    return field;
  };
  const count = (name: string): number => {
    const field = json[name];
    if (typeof field !== "number" || !Number.isSafeInteger(field) || field < 0) throw new CheckpointError(`manifest ${key}: ${name} is not a count`);
    return field;
  };
  if (json.format !== FORMAT) throw new CheckpointError(`manifest ${key} has format ${JSON.stringify(json.format)}; this version reads ${FORMAT}`);
  const position = text("position");
  if (!/^\d+$/.test(position)) throw new CheckpointError(`manifest ${key}: position ${JSON.stringify(position)} is not a position`);
  const manifest: Manifest = {
    format: FORMAT,
    generation: text("generation"),
    position: BigInt(position),
    logId: text("logId"),
    parts: count("parts"),
    sha256: text("sha256"),
    bytes: count("bytes"),
    entries: count("entries"),
    writtenAtUnixMs: count("writtenAtUnixMs"),
  };
  if (manifestKey(manifest.generation) !== key) throw new CheckpointError(`manifest ${key} names generation ${manifest.generation}`);
  return manifest;
}

/** The checkpoint a manifest names, from the topic's live records; throws CheckpointError when it is not whole. */
export function decodeCheckpoint(manifest: Manifest, records: ReadonlyMap<string, Buffer>): CheckpointContent {
  const values: Buffer[] = [];
  for (const key of [headerKey(manifest.generation), ...Array.from({ length: manifest.parts }, (_, index) => partKey(manifest.generation, index))]) {
    const value = records.get(key);
    if (value === undefined) throw new CheckpointError(`checkpoint ${manifest.generation} misses ${key}`);
    values.push(value);
  }
  const hash = createHash("sha256");
  for (const value of values) hash.update(value);
  if (hash.digest("hex") !== manifest.sha256) throw new CheckpointError(`checkpoint ${manifest.generation} does not match its manifest's SHA-256`);
  let header: SnapshotHeader;
  try {
    header = fromBinary(SnapshotHeaderSchema, values[0] as Buffer);
  } catch (error) {
    throw new CheckpointError(`checkpoint ${manifest.generation}: the header does not decode: ${(error as Error).message}`);
  }
  if (header.position !== manifest.position || header.logId !== manifest.logId) throw new CheckpointError(`checkpoint ${manifest.generation}: the header is not the manifest's`);
  const items = decodeItems(values.slice(1), manifest.generation);
  if (BigInt(items.length) !== header.entries) throw new CheckpointError(`checkpoint ${manifest.generation} holds ${items.length} items; its header says ${header.entries}`);
  return { exported: { position: header.position, scopes: header.scopes, items }, incomplete: header.incomplete === "" ? undefined : header.incomplete, manifest };
}

/**
 * The items of a SnapshotItems encoding cut into parts: field 1 (tag 0x0a), a varint
 * length, the item; read item by item so the parts are never joined into one copy.
 */
function decodeItems(parts: readonly Buffer[], generation: string): SnapshotItem[] {
  const items: SnapshotItem[] = [];
  let part = 0;
  let at = 0;
  const fail = (why: string): never => {
    throw new CheckpointError(`checkpoint ${generation}: the items do not decode: ${why}`);
  };
  const atEnd = (): boolean => {
    while (part < parts.length && at >= (parts[part] as Buffer).length) {
      part++;
      at = 0;
    }
    return part >= parts.length;
  };
  const byte = (): number => {
    if (atEnd()) fail("cut short");
    return (parts[part] as Buffer)[at++] as number;
  };
  const take = (length: number): Uint8Array => {
    if (length === 0) return new Uint8Array(0);
    atEnd();
    const current = parts[part];
    if (current !== undefined && at + length <= current.length) {
      at += length;
      return current.subarray(at - length, at);
    }
    const joined = Buffer.alloc(length);
    for (let filled = 0; filled < length; ) {
      if (atEnd()) fail("cut short");
      const from = parts[part] as Buffer;
      const copied = from.copy(joined, filled, at, Math.min(from.length, at + length - filled));
      filled += copied;
      at += copied;
    }
    return joined;
  };
  while (!atEnd()) {
    if (byte() !== 0x0a) fail("an unexpected field");
    let length = 0;
    for (let shift = 0; ; shift += 7) {
      if (shift > 28) fail("a length too long");
      const next = byte();
      length += (next & 0x7f) * 2 ** shift;
      if ((next & 0x80) === 0) break;
    }
    try {
      items.push(fromBinary(SnapshotItemSchema, take(length)));
    } catch (error) {
      if (error instanceof CheckpointError) throw error;
      fail((error as Error).message);
    }
  }
  return items;
}

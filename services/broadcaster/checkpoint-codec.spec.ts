/** The checkpoint records (checkpoint-codec.ts) and the choice among them (checkpoint-selection.ts). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { DataSourceEntrySchema, SaveMethod } from "../../gen/opal/mesh/v1/data_pb.js";
import { SnapshotItemSchema, SnapshotScopeSchema } from "../../gen/opal/mesh/v1/snapshot_pb.js";
import type { SnapshotExport } from "../common/snapshot/types.js";
import { CheckpointError, decodeCheckpoint, encodeCheckpoint, generationOf, headerKey, manifestKey, parseManifest, partKey } from "./checkpoint-codec.js";
import { chooseCheckpoint, staleKeys, type TopicRecord } from "./checkpoint-selection.js";

const LOG = "kafka:cluster/events";

function snapshotAt(position: bigint, items: number, dataBytes = 10): SnapshotExport {
  return {
    position,
    scopes: [create(SnapshotScopeSchema, { scope: "default", baselinePosition: 0n, policyHash: "abc" })],
    items: Array.from({ length: items }, (_, index) =>
      create(SnapshotItemSchema, {
        position: BigInt(index + 1),
        scope: "default",
        entry: create(DataSourceEntrySchema, { dstPath: `/p/${index}`, topics: ["policy_data"], saveMethod: SaveMethod.PUT, dataJson: Buffer.from(JSON.stringify("x".repeat(dataBytes))) }),
      }),
    ),
  };
}

function live(...checkpoints: Array<ReturnType<typeof encodeCheckpoint>>): Map<string, TopicRecord> {
  const records = new Map<string, TopicRecord>();
  for (const checkpoint of checkpoints) {
    for (const record of [...checkpoint.records, checkpoint.manifestRecord]) records.set(record.key, { value: record.value, timestampMs: checkpoint.manifest.writtenAtUnixMs });
  }
  return records;
}

function values(records: Map<string, TopicRecord>): Map<string, Buffer> {
  return new Map([...records].map(([key, record]) => [key, record.value]));
}

const encode = (generation: string, exported: SnapshotExport, now = 1_000, partBytes?: number) => encodeCheckpoint(exported, { generation, logId: LOG, incomplete: undefined, bytes: 0, now }, partBytes);

test("a checkpoint round-trips: header, parts, manifest", () => {
  const exported = snapshotAt(42n, 3);
  const checkpoint = encode("w.1", exported);
  assert.deepEqual(checkpoint.records.map((record) => record.key), [headerKey("w.1"), partKey("w.1", 0)]);
  assert.equal(checkpoint.manifestRecord.key, manifestKey("w.1"));
  const manifest = parseManifest(checkpoint.manifestRecord.key, checkpoint.manifestRecord.value);
  assert.deepEqual(manifest, checkpoint.manifest);
  const content = decodeCheckpoint(manifest, values(live(checkpoint)));
  assert.deepEqual(content.exported, exported);
  assert.equal(content.incomplete, undefined);
});

test("items larger than a part span parts, and decode whole", () => {
  const exported = snapshotAt(7n, 20, 300);
  const checkpoint = encode("w.1", exported, 1_000, 64);
  assert.ok(checkpoint.manifest.parts > 20, `${checkpoint.manifest.parts} parts`);
  assert.ok(checkpoint.records.slice(1).every((record) => record.value.length <= 64));
  assert.deepEqual(decodeCheckpoint(checkpoint.manifest, values(live(checkpoint))).exported, exported);
});

test("an empty snapshot is a header and no parts", () => {
  const checkpoint = encode("w.1", { position: 0n, scopes: [], items: [] });
  assert.equal(checkpoint.manifest.parts, 0);
  assert.deepEqual(decodeCheckpoint(checkpoint.manifest, values(live(checkpoint))).exported, { position: 0n, scopes: [], items: [] });
});

test("why a snapshot is incomplete travels with its checkpoint", () => {
  const checkpoint = encodeCheckpoint(snapshotAt(5n, 1), { generation: "w.1", logId: LOG, incomplete: "retention deleted positions 1..3", bytes: 0 });
  assert.equal(decodeCheckpoint(checkpoint.manifest, values(live(checkpoint))).incomplete, "retention deleted positions 1..3");
});

test("a checkpoint that is not whole is refused, naming what is wrong", () => {
  const checkpoint = encode("w.1", snapshotAt(9n, 50, 100), 1_000, 256);
  const cases: Array<[string, (records: Map<string, Buffer>) => void, RegExp]> = [
    ["a missing part", (records) => records.delete(partKey("w.1", 2)), /misses checkpoint\/w\.1\/2/],
    ["a missing header", (records) => records.delete(headerKey("w.1")), /misses checkpoint\/w\.1\/header/],
    ["a changed part", (records) => records.set(partKey("w.1", 0), Buffer.from("changed")), /SHA-256/],
  ];
  for (const [name, spoil, message] of cases) {
    const records = values(live(checkpoint));
    spoil(records);
    assert.throws(() => decodeCheckpoint(checkpoint.manifest, records), (error: unknown) => error instanceof CheckpointError && message.test(error.message), name);
  }
});

test("manifests that are not this format are refused", () => {
  const good = JSON.parse(encode("w.1", snapshotAt(1n, 1)).manifestRecord.value.toString()) as Record<string, unknown>;
  const cases: Array<[string, string, RegExp]> = [
    ["not JSON", "{", /not JSON/],
    ["another format", JSON.stringify({ ...good, format: 2 }), /format 2/],
    ["a bad position", JSON.stringify({ ...good, position: "-1" }), /position/],
    ["no parts count", JSON.stringify({ ...good, parts: "3" }), /parts is not a count/],
    ["another key", JSON.stringify({ ...good, generation: "w.2" }), /names generation w\.2/],
  ];
  for (const [name, value, message] of cases) {
    assert.throws(() => parseManifest(manifestKey("w.1"), Buffer.from(value)), (error: unknown) => error instanceof CheckpointError && message.test(error.message), name);
  }
});

test("keys name their generation", () => {
  assert.equal(generationOf("manifest/a.1"), "a.1");
  assert.equal(generationOf("checkpoint/a.1/header"), "a.1");
  assert.equal(generationOf("checkpoint/a.1/12"), "a.1");
  assert.equal(generationOf("something/else"), undefined);
});

test("the reader takes the newest whole checkpoint of this log", () => {
  const older = encode("a.1", snapshotAt(10n, 2), 1_000);
  const newer = encode("b.1", snapshotAt(20n, 3), 2_000);
  const cases: Array<[string, Map<string, TopicRecord>, bigint, string | undefined, string[]]> = [
    ["the highest position wins", live(older, newer), 100n, "b.1", []],
    ["a newer one missing its parts (a crash) leaves the older", (() => {
      const records = live(older, newer);
      records.delete(partKey("b.1", 0));
      return records;
    })(), 100n, "a.1", ["b.1"]],
    ["parts without a manifest are not a checkpoint", (() => {
      const records = live(older);
      for (const record of newer.records) records.set(record.key, { value: record.value, timestampMs: 2_000 });
      return records;
    })(), 100n, "a.1", []],
    ["a checkpoint past the topic's end is of an earlier topic", live(older, newer), 15n, "a.1", ["b.1"]],
    ["nothing to restore", new Map(), 0n, undefined, []],
  ];
  for (const [name, records, high, chosen, rejected] of cases) {
    const choice = chooseCheckpoint(records, { logId: LOG, highWatermark: high });
    assert.equal(choice.chosen?.manifest.generation, chosen, name);
    assert.deepEqual(choice.rejected.map((rejection) => rejection.generation), rejected, name);
  }
  const other = encodeCheckpoint(snapshotAt(30n, 1), { generation: "c.1", logId: "kafka:other/events", incomplete: undefined, bytes: 0 });
  const choice = chooseCheckpoint(live(older, other), { logId: LOG, highWatermark: 100n });
  assert.equal(choice.chosen?.manifest.generation, "a.1");
  assert.match(choice.rejected[0]?.reason ?? "", /of log kafka:other\/events/);
  assert.deepEqual(choice.chosen?.exported, snapshotAt(10n, 2));
});

test("the ties between equal positions go to the latest written", () => {
  const first = encode("a.1", snapshotAt(10n, 1), 1_000);
  const second = encode("b.1", snapshotAt(10n, 2), 2_000);
  assert.equal(chooseCheckpoint(live(first, second), { logId: LOG, highWatermark: 10n }).chosen?.manifest.generation, "b.1");
});

test("once its own checkpoint is written, a replica tombstones what it supersedes, never a newer or fresh one", () => {
  const old = encode("dead.1", snapshotAt(10n, 1), 1_000);
  const newer = encode("live.7", snapshotAt(50n, 1), 5_000);
  const records = live(old, newer);
  const crashed = encode("dead.2", snapshotAt(11n, 1), 1_500);
  const inFlight = encode("live.8", snapshotAt(60n, 1), 9_000);
  for (const record of [...crashed.records, ...inFlight.records]) records.set(record.key, { value: record.value, timestampMs: crashed.records.includes(record) ? 1_500 : 9_000 });
  const choice = chooseCheckpoint(records, { logId: LOG, highWatermark: 100n });
  const now = 9_500;
  const stale = staleKeys(choice, 40n, now, 5_000);
  assert.deepEqual(new Set(stale), new Set([manifestKey("dead.1"), headerKey("dead.1"), partKey("dead.1", 0), headerKey("dead.2"), partKey("dead.2", 0)]));
  assert.equal(stale[0], manifestKey("dead.1"), "the manifest goes first");
  assert.ok(staleKeys(choice, 50n, now, 5_000).includes(manifestKey("live.7")), "an equal position is superseded");
  assert.ok(!staleKeys(choice, 50n, now, 60_000).includes(headerKey("dead.2")), "young parts may be another replica's write");
});

/**
 * The Kafka log's snapshot over an in-memory stand-in of the snapshot topic, with a
 * stand-in snapshot (a list of the entries folded): what is restored, what is called
 * incomplete, what is written and tombstoned, and failures. test/snapshot-kafka.test.ts
 * runs the real thing on a real broker.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import type { Admin } from "kafkajs";
import { DataSourceEntrySchema } from "../../gen/opal/mesh/v1/data_pb.js";
import { type Event, EventSchema } from "../../gen/opal/mesh/v1/event_pb.js";
import { type SnapshotItem, SnapshotItemSchema } from "../../gen/opal/mesh/v1/snapshot_pb.js";
import { silentLogger } from "../common/logger.js";
import type { ScopeView, Snapshot, SnapshotExport, SnapshotStats } from "../common/snapshot/types.js";
import type { EncodedCheckpoint } from "./checkpoint-codec.js";
import type { TopicRecord } from "./checkpoint-selection.js";
import { type CheckpointTopic, KafkaSnapshot } from "./kafka-snapshot.js";

const LOG = "kafka:c/events";
const admin = {} as Admin;

class ListSnapshot implements Snapshot {
  position = 0n;
  items: SnapshotItem[] = [];
  get stats(): SnapshotStats {
    return { position: this.position, entries: this.items.length, bytes: 0, scopes: 0 };
  }
  fold(event: Event): void {
    if (event.position <= this.position || event.payload.case === undefined) return;
    this.position = event.position;
    if (event.payload.case !== "dataUpdate") return;
    for (const entry of event.payload.value.entries) this.items.push(create(SnapshotItemSchema, { position: event.position, scope: "default", entry }));
  }
  policyOf(): { policyHash: string; rollout: undefined } {
    return { policyHash: "", rollout: undefined };
  }
  growthOf(): number {
    return 0;
  }
  view(): ScopeView {
    throw new Error("not used here");
  }
  export(): SnapshotExport {
    return { position: this.position, scopes: [], items: [...this.items] };
  }
  restore(exported: SnapshotExport): void {
    this.position = exported.position;
    this.items = [...exported.items];
  }
  reset(position: bigint): void {
    this.position = position;
    this.items = [];
  }
}

/** The compacted topic as its live records; `failWrites` makes sends fail. */
class MemoryTopic implements CheckpointTopic {
  readonly topic = "events-snapshot";
  readonly records = new Map<string, TopicRecord>();
  failWrites = false;
  writes = 0;
  async open(): Promise<void> {}
  async close(): Promise<void> {}
  async readAll(): Promise<Map<string, TopicRecord>> {
    return new Map(this.records);
  }
  async write(checkpoint: EncodedCheckpoint): Promise<void> {
    if (this.failWrites) throw new Error("broker unreachable");
    this.writes++;
    for (const record of [...checkpoint.records, checkpoint.manifestRecord]) this.records.set(record.key, { value: record.value, timestampMs: Date.now() });
  }
  async tombstone(keys: readonly string[]): Promise<void> {
    if (this.failWrites) throw new Error("broker unreachable");
    for (const key of keys) this.records.delete(key);
  }
  generations(): string[] {
    return [...this.records.keys()].filter((key) => key.startsWith("manifest/")).sort();
  }
}

function put(position: bigint, path: string, value: unknown): Event {
  const entry = create(DataSourceEntrySchema, { dstPath: path, topics: ["policy_data"], dataJson: Buffer.from(JSON.stringify(value)) });
  return create(EventSchema, { position, topics: ["policy_data"], payload: { case: "dataUpdate", value: { id: `u${position}`, entries: [entry], reason: "", callbacks: [] } } });
}

function keeper(store: MemoryTopic, snapshot = new ListSnapshot()): KafkaSnapshot {
  return new KafkaSnapshot({ snapshot, store, eventsTopic: "events", checkpointIntervalMs: 60_000, stopTimeoutMs: 1_000, logger: silentLogger() });
}

const offsets = (low: bigint, high: bigint) => async () => ({ low, high });
const signal = new AbortController().signal;

test("a checkpoint written by one is restored by the next, which folds only what follows it", async () => {
  const store = new MemoryTopic();
  const first = keeper(store);
  assert.deepEqual(await first.load(admin, LOG, offsets(0n, 0n), signal), { low: 0n, high: 0n, position: 0n });
  for (let position = 1n; position <= 3n; position++) first.fold(put(position, `/p${position}`, Number(position)));
  await first.checkpoint();
  assert.equal(first.checkpointsWritten, 1);
  assert.equal(first.lastCheckpoint?.position, 3n);
  await first.checkpoint();
  assert.equal(store.writes, 1, "nothing moved: nothing written");

  const snapshot = new ListSnapshot();
  const second = keeper(store, snapshot);
  assert.deepEqual(await second.load(admin, LOG, offsets(0n, 5n), signal), { low: 0n, high: 5n, position: 3n });
  for (let position = 1n; position <= 5n; position++) second.fold(put(position, `/p${position}`, Number(position)));
  assert.deepEqual(snapshot.items.map((item) => item.entry?.dstPath), ["/p1", "/p2", "/p3", "/p4", "/p5"]);
  assert.equal(second.problem(), undefined);
});

test("each new checkpoint tombstones the writer's previous one and the one it restored", async () => {
  const store = new MemoryTopic();
  const first = keeper(store);
  await first.load(admin, LOG, offsets(0n, 0n), signal);
  first.fold(put(1n, "/a", 1));
  await first.checkpoint();
  first.fold(put(2n, "/b", 2));
  await first.checkpoint();
  assert.equal(store.generations().length, 1, "the first writer's older checkpoint is gone");
  const [restored] = store.generations();

  const second = keeper(store);
  await second.load(admin, LOG, offsets(0n, 2n), signal);
  second.fold(put(3n, "/c", 3));
  await second.checkpoint();
  assert.equal(store.generations().length, 1);
  assert.notEqual(store.generations()[0], restored, "the restored checkpoint is superseded");
  assert.ok([...store.records.keys()].every((key) => !key.includes(restored?.slice("manifest/".length) ?? "?")), "parts and header too");
});

test("retention past the checkpoint, or with none, leaves the snapshot incomplete, and says why", async () => {
  const cases: Array<[string, boolean, bigint, RegExp | undefined]> = [
    ["no checkpoint, nothing deleted", false, 0n, undefined],
    ["no checkpoint, retention deleted some", false, 4n, /positions 1\.\.4 and there is no checkpoint of the snapshot in events-snapshot/],
    ["a checkpoint at 2, the topic starts at 2", true, 2n, undefined],
    ["a checkpoint at 2, the topic starts at 3", true, 3n, /positions 3\.\.3 after the newest checkpoint \(2\)/],
  ];
  for (const [name, checkpointed, low, problem] of cases) {
    const store = new MemoryTopic();
    if (checkpointed) {
      const writer = keeper(store);
      await writer.load(admin, LOG, offsets(0n, 0n), signal);
      writer.fold(put(1n, "/a", 1));
      writer.fold(put(2n, "/b", 2));
      await writer.checkpoint();
    }
    const snapshot = new ListSnapshot();
    const reader = keeper(store, snapshot);
    await reader.load(admin, LOG, offsets(low, 6n), signal);
    for (let position = low + 1n; position <= 6n; position++) reader.fold(put(position, `/p${position}`, 1));
    if (problem === undefined) assert.equal(reader.problem(), undefined, name);
    else assert.match(reader.problem() ?? "", problem, name);
    assert.equal(snapshot.position, 6n, `${name}: it folds what there is`);
  }
});

test("a gap in what the tail reads is named; the next checkpoint carries it, so a restart keeps saying so", async () => {
  const store = new MemoryTopic();
  const first = keeper(store);
  await first.load(admin, LOG, offsets(0n, 0n), signal);
  first.fold(put(1n, "/a", 1));
  first.fold(put(4n, "/d", 4));
  assert.match(first.problem() ?? "", /positions 2\.\.3 before the tail read them/);
  await first.checkpoint();
  const second = keeper(store);
  await second.load(admin, LOG, offsets(0n, 4n), signal);
  assert.match(second.problem() ?? "", /positions 2\.\.3 before the tail read them/);
});

test("a checkpoint past the topic's end (an earlier topic of the same name) or of another log is not restored", async () => {
  const store = new MemoryTopic();
  const writer = keeper(store);
  await writer.load(admin, LOG, offsets(0n, 0n), signal);
  for (let position = 1n; position <= 9n; position++) writer.fold(put(position, "/a", Number(position)));
  await writer.checkpoint();
  const snapshot = new ListSnapshot();
  const recreated = keeper(store, snapshot);
  assert.equal((await recreated.load(admin, LOG, offsets(0n, 2n), signal)).position, 0n);
  assert.equal(snapshot.items.length, 0);
  const elsewhere = keeper(store, snapshot);
  assert.equal((await elsewhere.load(admin, "kafka:other/events", offsets(0n, 20n), signal)).position, 0n);
});

test("failed writes are counted, shown until one works, and retried; stop writes the last one", async () => {
  const store = new MemoryTopic();
  const log = keeper(store);
  await log.load(admin, LOG, offsets(0n, 0n), signal);
  log.fold(put(1n, "/a", 1));
  store.failWrites = true;
  await log.checkpoint();
  await log.checkpoint();
  assert.equal(log.checkpointFailures, 2);
  assert.equal(log.checkpointsWritten, 0);
  assert.match(log.checkpointProblem() ?? "", /cannot write the snapshot's checkpoint to events-snapshot: broker unreachable/);
  store.failWrites = false;
  await log.checkpoint();
  assert.equal(log.checkpointProblem(), undefined);
  log.fold(put(2n, "/b", 2));
  await log.stop();
  assert.equal(log.checkpointsWritten, 2);
  assert.equal(log.lastCheckpoint?.position, 2n, "stop wrote the last one");
});

test("an event the fold cannot take is named, and the tail goes on", async () => {
  const snapshot = new ListSnapshot();
  const log = keeper(new MemoryTopic(), snapshot);
  await log.load(admin, LOG, offsets(0n, 0n), signal);
  const fold = snapshot.fold.bind(snapshot);
  snapshot.fold = (event) => {
    if (event.position === 2n) throw new Error("cannot fold this");
    fold(event);
  };
  for (let position = 1n; position <= 3n; position++) log.fold(put(position, `/p${position}`, 1));
  assert.match(log.problem() ?? "", /folding position 2 failed: cannot fold this/);
  assert.equal(snapshot.position, 3n);
});

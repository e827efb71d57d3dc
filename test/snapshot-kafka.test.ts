/**
 * The snapshot on a real Kafka broker (issue 13, item 4): checkpointed to the compacted
 * snapshot topic, it outlives the log that wrote it and the events topic's retention; a new
 * log has it once started; events external producers write are folded the same way; a
 * snapshot that retention left incomplete says so; a checkpoint larger than one part, and a
 * crash between parts and manifest, leave a whole checkpoint to restore.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { create, toJson } from "@bufbuild/protobuf";
import { type Admin, Kafka, logLevel } from "kafkajs";
import { type Event, EventSchema } from "../gen/opal/mesh/v1/event_pb.js";
import { SnapshotItemSchema, SnapshotScopeSchema } from "../gen/opal/mesh/v1/snapshot_pb.js";
import { encodeCheckpoint } from "../services/broadcaster/checkpoint-codec.js";
import { encodeEvent } from "../services/broadcaster/kafka-codec.js";
import { KafkaLog } from "../services/broadcaster/kafka-log.js";
import { parseDataUpdate } from "../services/common/data-entries.js";
import { silentLogger } from "../services/common/logger.js";
import { LogSnapshot } from "../services/common/snapshot/log-snapshot.js";
import type { Snapshot } from "../services/common/snapshot/types.js";
import { type RunningKafka, startTestKafka } from "./helpers/kafka.js";
import { waitFor } from "./helpers/wait.js";

let kafka: RunningKafka;
let client: Kafka;
let admin: Admin;
const running = new Set<KafkaLog>();

before(async () => {
  kafka = await startTestKafka();
  client = new Kafka({ brokers: [kafka.bootstrap], logLevel: logLevel.NOTHING });
  admin = client.admin();
  await admin.connect();
});

after(async () => {
  for (const log of running) await log.stop();
  await admin?.disconnect();
  await kafka?.destroy();
});

async function startLog(topic: string): Promise<KafkaLog> {
  const log = new KafkaLog({
    client: { brokers: [kafka.bootstrap], clientId: "snapshot-kafka-test" },
    topic,
    retentionMs: 3_600_000,
    replicationFactor: 1,
    window: { maxEvents: 20, maxBytes: 64 * 1024 * 1024 },
    snapshot: { topic: `${topic}-snapshot`, checkpointIntervalMs: 200 },
    logger: silentLogger(),
  });
  running.add(log);
  await log.start(new AbortController().signal);
  return log;
}

async function stopLog(log: KafkaLog): Promise<void> {
  await log.stop();
  running.delete(log);
}

/** An event of OPAL's DataUpdate JSON, as a publisher or an external producer writes it. */
function update(entries: Array<Record<string, unknown>>): Event {
  const value = parseDataUpdate({ entries: entries.map((entry) => ({ url: "", topics: ["policy_data"], ...entry })) });
  return create(EventSchema, { topics: ["policy_data"], payload: { case: "dataUpdate", value } });
}

/** A mix of PUT, PATCH and DELETE at overlapping paths, numbered by `round`. */
function mixed(round: number): Event[] {
  return [
    update([{ dst_path: `/users/u${round}`, data: { name: `user ${round}`, roles: ["reader"] } }]),
    update([{ dst_path: `/users/u${round}`, save_method: "PATCH", data: [{ op: "add", path: "/roles/-", value: "writer" }] }]),
    update([{ dst_path: "/config", data: { round, flags: { a: round % 2 === 0 } } }]),
    update([{ dst_path: "/config/flags/b", data: round }]),
    update([{ dst_path: `/users/u${round - 1}`, save_method: "DELETE" }]),
  ];
}

/** Writes events straight into the topic with a plain producer (no checkpoint follows them); their positions are set. */
async function produce(topic: string, events: Event[], as: "protobuf" | "json" = "protobuf"): Promise<void> {
  const producer = client.producer();
  await producer.connect();
  try {
    const messages = events.map((event) =>
      as === "protobuf" ? encodeEvent(event) : { value: JSON.stringify({ entries: event.payload.case === "dataUpdate" ? event.payload.value.entries.map((entry) => ({ url: "", topics: entry.topics, dst_path: entry.dstPath, data: JSON.parse(Buffer.from(entry.dataJson ?? []).toString()) as unknown })) : [] }) },
    );
    const [result] = await producer.send({ topic, acks: -1, messages });
    events.forEach((event, index) => (event.position = BigInt(result?.baseOffset ?? "0") + BigInt(index) + 1n));
  } finally {
    await producer.disconnect();
  }
}

/** What an ordered replay of every event gives, folded in memory. */
function folded(events: readonly Event[]): LogSnapshot {
  const snapshot = new LogSnapshot();
  for (const event of [...events].sort((a, b) => (a.position < b.position ? -1 : 1))) snapshot.fold(event);
  return snapshot;
}

/** A snapshot's export in a form deepEqual compares (bytes as Buffer or Uint8Array alike). */
function exported(snapshot: Snapshot): unknown {
  const { position, scopes, items } = snapshot.export();
  return { position, scopes: scopes.map((scope) => toJson(SnapshotScopeSchema, scope)), items: items.map((item) => toJson(SnapshotItemSchema, item)) };
}

async function readUpTo(log: KafkaLog, position: bigint): Promise<void> {
  await waitFor(() => log.head().headPosition >= position, { message: () => `the tail to read up to ${position} (at ${log.head().headPosition})` });
}

async function checkpointed(log: KafkaLog, position: bigint): Promise<void> {
  await waitFor(() => (log.checkpoints.lastCheckpoint?.position ?? 0n) >= position, { message: () => `a checkpoint at ${position} (last: ${log.checkpoints.lastCheckpoint?.position})`, timeoutMs: 20_000 });
}

async function truncate(topic: string): Promise<bigint> {
  const high = BigInt((await admin.fetchTopicOffsets(topic))[0]?.high ?? "0");
  await admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: high.toString() }] });
  await waitFor(async () => BigInt((await admin.fetchTopicOffsets(topic))[0]?.low ?? "0") === high, { message: "the log start offset to move" });
  return high;
}

describe("the snapshot on Kafka", () => {
  test("a new log on the same topic has, once started, the snapshot the first one checkpointed — external producers' events folded too", async () => {
    const topic = "snapshot-restart";
    const first = await startLog(topic);
    const events = [...mixed(1), ...mixed(2)];
    await first.append(events);
    const external = [update([{ dst_path: "/external/json", data: "from json" }]), update([{ dst_path: "/config/flags/c", data: "external" }])];
    await produce(topic, external, "json");
    events.push(...external, ...mixed(3));
    await first.append(events.slice(-5));
    const head = events.at(-1)?.position ?? 0n;
    await readUpTo(first, head);
    await checkpointed(first, head);
    await stopLog(first);
    const written = exported(first.snapshot);
    assert.equal(first.snapshot.position, head);
    assert.deepEqual(written, exported(folded(events)), "the tail folded the log's and the external producer's events in order");

    const { resources } = await admin.describeConfigs({ includeSynonyms: false, resources: [{ type: 2 /* TOPIC */, name: `${topic}-snapshot`, configNames: ["cleanup.policy"] }] });
    assert.equal(resources[0]?.configEntries[0]?.configValue, "compact");

    const second = await startLog(topic);
    assert.deepEqual(exported(second.snapshot), written, "restored before start() resolved");
    assert.equal(second.snapshotProblem(), undefined);
    await stopLog(second);
  });

  test("after retention deleted every event a checkpoint holds, a new log still has the whole snapshot", async () => {
    const topic = "snapshot-retention";
    const writer = await startLog(topic);
    const events = [...mixed(1), ...mixed(2), ...mixed(3)];
    await writer.append(events);
    const head = events.at(-1)?.position ?? 0n;
    await readUpTo(writer, head);
    await checkpointed(writer, head);
    await stopLog(writer);
    assert.equal(await truncate(topic), head);
    // More events, written with no log running: no checkpoint holds them.
    const later = [...mixed(4), update([{ dst_path: "/users", save_method: "DELETE" }]), ...mixed(5)];
    await produce(topic, later);
    events.push(...later);

    const reader = await startLog(topic);
    assert.equal(reader.head().firstRetainedPosition, head + 1n, "the topic no longer holds what the checkpoint does");
    assert.deepEqual(exported(reader.snapshot), exported(folded(events)));
    assert.equal(reader.snapshotProblem(), undefined);
    await stopLog(reader);
  });

  test("retention with no checkpoint: the snapshot says what it misses", async () => {
    const topic = "snapshot-lost";
    await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: 1, replicationFactor: 1 }] });
    const events = [...mixed(1), ...mixed(2)];
    await produce(topic, events);
    const high = await truncate(topic);
    const later = mixed(3);
    await produce(topic, later);
    const log = await startLog(topic);
    assert.match(log.snapshotProblem() ?? "", new RegExp(`retention deleted positions 1\\.\\.${high} and there is no checkpoint of the snapshot in ${topic}-snapshot`));
    assert.deepEqual(exported(log.snapshot), exported(folded(later)), "it folds what there is");
    // The checkpoint carries the problem: a restart does not hide it.
    await checkpointed(log, later.at(-1)?.position ?? 0n);
    await stopLog(log);
    const again = await startLog(topic);
    assert.match(again.snapshotProblem() ?? "", /there is no checkpoint/);
    await stopLog(again);
  });

  test("a checkpoint of several parts (3 MiB of inline data, one document larger than a part) round-trips", async () => {
    const topic = "snapshot-large";
    const first = await startLog(topic);
    const events: Event[] = [];
    for (let index = 0; index < 30; index++) events.push(update([{ dst_path: `/blobs/b${index}`, data: { index, text: `${index}`.padEnd(100 * 1024, "x") } }]));
    events.push(update([{ dst_path: "/big", data: { part: "a".repeat(400 * 1024) } }]));
    events.push(update([{ dst_path: "/big", save_method: "PATCH", data: [{ op: "add", path: "/more", value: "b".repeat(400 * 1024) }] }]));
    for (const event of events) await first.append([event]);
    const head = events.at(-1)?.position ?? 0n;
    await readUpTo(first, head);
    await checkpointed(first, head);
    const last = first.checkpoints.lastCheckpoint;
    assert.ok(last !== undefined && last.parts >= 6 && last.bytes > 3 * 1024 * 1024, JSON.stringify({ parts: last?.parts, bytes: last?.bytes }));
    await stopLog(first);
    const second = await startLog(topic);
    assert.deepEqual(exported(second.snapshot), exported(folded(events)));
    await stopLog(second);
  });

  test("a crash between the parts and the manifest leaves the previous checkpoint in use", async () => {
    const topic = "snapshot-crash";
    const first = await startLog(topic);
    const events = [...mixed(1), ...mixed(2)];
    await first.append(events);
    const head = events.at(-1)?.position ?? 0n;
    await readUpTo(first, head);
    await checkpointed(first, head);
    await stopLog(first);
    const good = exported(first.snapshot);
    // A newer checkpoint, cut off before its manifest: its header and parts only.
    const stray = encodeCheckpoint({ ...folded(mixed(9)).export(), position: head }, { generation: "crashed.1", logId: "", incomplete: undefined, bytes: 0 });
    // And one whose manifest made it but not all of its parts (as a part lost would leave it).
    const partial = encodeCheckpoint({ ...folded(mixed(8)).export(), position: head }, { generation: "partial.1", logId: first.head().logId, incomplete: undefined, bytes: 0 }, 64);
    const producer = client.producer();
    await producer.connect();
    await producer.send({ topic: `${topic}-snapshot`, acks: -1, messages: [...stray.records, ...partial.records.slice(0, -1), partial.manifestRecord].map((record) => ({ ...record, partition: 0 })) });
    await producer.disconnect();

    const second = await startLog(topic);
    assert.deepEqual(exported(second.snapshot), good);
    assert.equal(second.snapshotProblem(), undefined);
    await stopLog(second);
  });
});

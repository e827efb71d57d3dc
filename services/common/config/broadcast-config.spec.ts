import { test } from "node:test";
import assert from "node:assert/strict";
import { ConfigError } from "./env-reader.js";
import { loadServerConfig } from "./server-config.js";

const kafka = { OPAL_BROADCAST_URI: "kafka://kafka:9092" };

test("the snapshot's checkpoints: a compacted topic beside the events topic, every 5 s", () => {
  const broadcast = loadServerConfig({ ...kafka, OPAL_BROADCAST_CHANNEL_NAME: "events" }).broadcast;
  assert.equal(broadcast.type, "kafka");
  assert.deepEqual(broadcast.type === "kafka" && [broadcast.snapshotTopic, broadcast.checkpointIntervalMs], ["events-snapshot", 5_000]);
  const set = loadServerConfig({ ...kafka, OPAL_MESH_KAFKA_SNAPSHOT_TOPIC: "snap", OPAL_MESH_SNAPSHOT_CHECKPOINT_INTERVAL_MS: "250" }).broadcast;
  assert.deepEqual(set.type === "kafka" && [set.snapshotTopic, set.checkpointIntervalMs], ["snap", 250]);
});

test("a checkpoint interval that is not far below retention, or below 100 ms, fails start-up naming it", () => {
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ OPAL_MESH_SNAPSHOT_CHECKPOINT_INTERVAL_MS: "10000", OPAL_MESH_KAFKA_RETENTION_MS: "60000" }, /OPAL_MESH_SNAPSHOT_CHECKPOINT_INTERVAL_MS: 10000 ms is more than a tenth of OPAL_MESH_KAFKA_RETENTION_MS \(60000 ms\)/],
    [{ OPAL_MESH_SNAPSHOT_CHECKPOINT_INTERVAL_MS: "50" }, /OPAL_MESH_SNAPSHOT_CHECKPOINT_INTERVAL_MS/],
  ];
  for (const [env, message] of cases) {
    assert.throws(() => loadServerConfig({ ...kafka, ...env }), (error: unknown) => error instanceof ConfigError && message.test(error.message));
  }
});

test("the tail's fetch: answered at once by default, held for bytes or time when asked; out-of-range values name the variable", () => {
  const broadcast = loadServerConfig(kafka).broadcast;
  assert.deepEqual(broadcast.type === "kafka" && broadcast.fetch, { maxWaitMs: 100, minBytes: 1 });
  const set = loadServerConfig({ ...kafka, OPAL_MESH_KAFKA_FETCH_MAX_WAIT_MS: "20", OPAL_MESH_KAFKA_FETCH_MIN_BYTES: "65536" }).broadcast;
  assert.deepEqual(set.type === "kafka" && set.fetch, { maxWaitMs: 20, minBytes: 65_536 });
  const refused: Array<[string, string]> = [["OPAL_MESH_KAFKA_FETCH_MAX_WAIT_MS", "0"], ["OPAL_MESH_KAFKA_FETCH_MAX_WAIT_MS", "60000"], ["OPAL_MESH_KAFKA_FETCH_MIN_BYTES", "0"], ["OPAL_MESH_KAFKA_FETCH_MIN_BYTES", "lots"]];
  for (const [name, value] of refused) {
    assert.throws(() => loadServerConfig({ ...kafka, [name]: value }), (error: unknown) => error instanceof ConfigError && error.message.includes(name), `${name}=${value}`);
  }
});

import { test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { EventSchema } from "../../gen/opal/mesh/v1/event_pb.js";
import { Registry } from "../common/telemetry/metrics.js";
import type { EventLog } from "./event-log.js";
import { LogSnapshot } from "../common/snapshot/log-snapshot.js";
import { MemoryLog } from "./memory-log.js";
import { BroadcasterMetrics } from "./metrics.js";

const event = () => create(EventSchema, { topics: ["policy_data"], payload: { case: "dataUpdate", value: { id: "u" } } });

test("appends are counted per event, failed appends per call", async () => {
  const registry = new Registry();
  const metrics = new BroadcasterMetrics(registry, { backend: "memory" });
  const log = metrics.meter(new MemoryLog({ maxEvents: 100, maxBytes: 1_000_000 }));
  assert.deepEqual(await log.append([event(), event()]), [1n, 2n]);
  assert.equal(log.head().headPosition, 2n);
  const failing: EventLog = { head: () => ({ headPosition: 0n, firstRetainedPosition: 1n, logId: "x" }), append: async () => Promise.reject(new Error("not acknowledged")), read: () => assert.fail("not used"), snapshot: new LogSnapshot(), snapshotProblem: () => undefined };
  await assert.rejects(metrics.meter(failing).append([event()]), /not acknowledged/);
  const text = await registry.metrics();
  assert.match(text, /opal_mesh_broadcaster_events_appended_total\{backend="memory"\} 2/);
  assert.match(text, /opal_mesh_broadcaster_append_errors_total\{backend="memory"\} 1/);
  assert.doesNotMatch(text, /kafka_consumer_lag/);
});

test("with Kafka, the tail's lag is read at scrape time", async () => {
  const registry = new Registry();
  let lag = 7n;
  new BroadcasterMetrics(registry, { backend: "kafka", consumerLag: () => lag });
  assert.match(await registry.metrics(), /opal_mesh_broadcaster_kafka_consumer_lag_messages 7/);
  lag = 0n;
  assert.match(await registry.metrics(), /opal_mesh_broadcaster_kafka_consumer_lag_messages 0/);
});

test("with Kafka, failed reads of the topic's offsets are counted, not swallowed", async () => {
  const registry = new Registry();
  let failures = 0;
  new BroadcasterMetrics(registry, { backend: "kafka", offsetRefreshFailures: () => failures });
  assert.match(await registry.metrics(), /opal_mesh_broadcaster_kafka_offset_refresh_failures_total 0/);
  failures = 3;
  assert.match(await registry.metrics(), /opal_mesh_broadcaster_kafka_offset_refresh_failures_total 3/);
  failures = 4;
  assert.match(await registry.metrics(), /opal_mesh_broadcaster_kafka_offset_refresh_failures_total 4/);
});

test("with Kafka, the snapshot's checkpoints written and failed are counted, and the newest one's position shown", async () => {
  const registry = new Registry();
  const counts: { written: number; failed: number; position: bigint | undefined } = { written: 0, failed: 0, position: undefined };
  new BroadcasterMetrics(registry, { backend: "kafka", checkpoints: () => counts });
  let text = await registry.metrics();
  assert.match(text, /opal_mesh_broadcaster_snapshot_checkpoints_total 0/);
  assert.match(text, /opal_mesh_broadcaster_snapshot_checkpoint_position 0/);
  Object.assign(counts, { written: 2, failed: 1, position: 812n });
  text = await registry.metrics();
  assert.match(text, /opal_mesh_broadcaster_snapshot_checkpoints_total 2/);
  assert.match(text, /opal_mesh_broadcaster_snapshot_checkpoint_failures_total 1/);
  assert.match(text, /opal_mesh_broadcaster_snapshot_checkpoint_position 812/);
});

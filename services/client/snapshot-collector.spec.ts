/** The client gathers a snapshot's parts in order; a part for another position, or a stream cut before the last, fails it. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { DataSourceEntrySchema } from "../../gen/opal/mesh/v1/data_pb.js";
import { SnapshotPartSchema } from "../../gen/opal/mesh/v1/distributor_pb.js";
import { SnapshotCollector, SnapshotLostError } from "./snapshot-collector.js";

const entry = (path: string) => create(DataSourceEntrySchema, { dstPath: path, topics: ["t"], dataJson: Buffer.from("1") });

test("parts are gathered in order until the last, which carries the policy version", async () => {
  const collector = new SnapshotCollector(5n);
  assert.equal(collector.add(create(SnapshotPartSchema, { position: 5n, beforeBaseline: [entry("/a")], afterBaseline: [entry("/b")] })), false);
  assert.equal(collector.complete, false);
  assert.equal(collector.add(create(SnapshotPartSchema, { position: 5n, afterBaseline: [entry("/c")], last: true, policyHash: "h", incomplete: "" })), true);
  const received = await collector.done;
  assert.deepEqual(received.beforeBaseline.map((one) => one.dstPath), ["/a"]);
  assert.deepEqual(received.afterBaseline.map((one) => one.dstPath), ["/b", "/c"]);
  assert.equal(received.policyHash, "h");
  assert.equal(received.incomplete, undefined);
  // Nothing after the last part counts.
  assert.equal(collector.add(create(SnapshotPartSchema, { position: 5n, last: true })), false);
});

test("a part for another position fails it; so does a stream cut before the last part", async () => {
  const wrong = new SnapshotCollector(5n);
  assert.equal(wrong.add(create(SnapshotPartSchema, { position: 6n, last: true })), false);
  assert.equal(wrong.complete, true);
  await assert.rejects(wrong.done, /position 6 for a session starting at 5/);
  const cut = new SnapshotCollector(5n);
  cut.add(create(SnapshotPartSchema, { position: 5n, afterBaseline: [entry("/a")] }));
  cut.fail(new SnapshotLostError("the stream ended"));
  await assert.rejects(cut.done, SnapshotLostError);
});

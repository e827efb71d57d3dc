/** A view becomes parts of bounded size in replay order; the last carries the policy version and says so. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { create, fromBinary } from "@bufbuild/protobuf";
import { DataSourceEntrySchema } from "../../gen/opal/mesh/v1/data_pb.js";
import { ConnectResponseSchema } from "../../gen/opal/mesh/v1/distributor_pb.js";
import { SnapshotItemSchema } from "../../gen/opal/mesh/v1/snapshot_pb.js";
import type { ScopeView } from "../common/snapshot/types.js";
import { snapshotFrames } from "./snapshot-sender.js";

const item = (path: string, bytes: number, position: bigint) => create(SnapshotItemSchema, { position, scope: "default", entry: create(DataSourceEntrySchema, { dstPath: path, topics: ["t"], dataJson: Buffer.alloc(bytes, 0x31) }) });

function parts(view: ScopeView, incomplete?: string) {
  return [...snapshotFrames(view, incomplete)].map((frame) => {
    const message = fromBinary(ConnectResponseSchema, frame).message;
    assert.equal(message.case, "snapshot");
    return message.value;
  });
}

test("an empty view is one last part", () => {
  const [only, ...rest] = parts({ scope: "default", position: 3n, beforeBaseline: [], afterBaseline: [], policyHash: "p" });
  assert.equal(rest.length, 0);
  assert.equal(only?.last, true);
  assert.equal(only?.position, 3n);
  assert.equal(only?.policyHash, "p");
});

test("a large view goes in parts of at most 512 KiB, in order, entries before the baseline first", () => {
  const before = [item("/a", 300_000, 1n), item("/b", 300_000, 2n)];
  const after = [item("/c", 300_000, 4n), item("/d", 10, 5n)];
  const got = parts({ scope: "default", position: 5n, beforeBaseline: before, afterBaseline: after, policyHash: "p" }, "lost 1..3");
  assert.ok(got.length >= 3, `${got.length} parts`);
  for (const part of got) {
    const size = [...part.beforeBaseline, ...part.afterBaseline].reduce((sum, entry) => sum + (entry.dataJson?.byteLength ?? 0), 0);
    assert.ok(size <= 512 * 1024 || part.beforeBaseline.length + part.afterBaseline.length === 1);
  }
  assert.deepEqual(got.flatMap((part) => part.beforeBaseline.map((entry) => entry.dstPath)), ["/a", "/b"]);
  assert.deepEqual(got.flatMap((part) => part.afterBaseline.map((entry) => entry.dstPath)), ["/c", "/d"]);
  assert.deepEqual(got.map((part) => part.last), [...got.slice(1).map(() => false), true]);
  assert.equal(got.at(-1)?.incomplete, "lost 1..3");
  assert.equal(got[0]?.policyHash, "");
});

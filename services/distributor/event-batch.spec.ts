import assert from "node:assert/strict";
import test from "node:test";
import { create, fromBinary } from "@bufbuild/protobuf";
import { ConnectResponseSchema } from "../../gen/opal/mesh/v1/distributor_pb.js";
import { EventSchema } from "../../gen/opal/mesh/v1/event_pb.js";
import { batchFrames, isEventFrame } from "./event-batch.js";
import { encodeEvent, encodePong } from "./frames.js";

function event(position: number, size: number) {
  return create(EventSchema, {
    position: BigInt(position),
    topics: ["policy_data"],
    payload: { case: "dataUpdate", value: { id: `u${position}`, reason: "x".repeat(size), entries: [{ dstPath: "/a", topics: ["policy_data"], dataJson: new TextEncoder().encode(`{"v":${position}}`) }] } },
  });
}

test("a batch made of event frames decodes to the same events, in order, for every length prefix size", () => {
  // Sizes cross the one-, two- and three-byte varint lengths of the inner and outer messages.
  for (const sizes of [[1], [1, 2, 3], [100, 200], [20_000], [70_000, 90_000, 5]]) {
    const events = sizes.map((size, index) => event(index + 1, size));
    const frames = events.map(encodeEvent);
    assert.ok(frames.every(isEventFrame));
    const decoded = fromBinary(ConnectResponseSchema, batchFrames(frames));
    assert.equal(decoded.message.case, "events");
    const batch = decoded.message.case === "events" ? decoded.message.value.events : [];
    assert.equal(batch.length, events.length);
    batch.forEach((got, index) => {
      const expected = events[index];
      assert.equal(got.position, expected?.position);
      assert.deepEqual(got.payload, expected?.payload);
    });
  }
});

test("only lone event frames may join a batch", () => {
  assert.equal(isEventFrame(encodePong(7n)), false);
  assert.equal(isEventFrame(new Uint8Array()), false);
  assert.equal(isEventFrame(encodeEvent(event(1, 3))), true);
});

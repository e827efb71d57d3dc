import { test } from "node:test";
import assert from "node:assert/strict";
import { type FrameTransport, GRPC_FRAME_HEADER_BYTES, SendQueue } from "./send-queue.js";

/** A transport that takes `capacity` frames before it asks to wait; the test decides when each one leaves. */
class FakeTransport implements FrameTransport {
  readonly written: number[] = [];
  private readonly callbacks: Array<() => void> = [];
  private drainListener: (() => void) | undefined;

  constructor(private capacity: number) {}

  write(frame: Uint8Array, callback: () => void): boolean {
    this.written.push(frame.byteLength);
    this.callbacks.push(callback);
    return this.callbacks.length < this.capacity;
  }

  on(_event: "drain", listener: () => void): void {
    this.drainListener = listener;
  }

  /** The oldest `count` frames left; then the transport drains. */
  flush(count: number): void {
    for (const callback of this.callbacks.splice(0, count)) callback();
    this.drainListener?.();
  }
}

const frame = (bytes: number): Uint8Array => new Uint8Array(bytes);
const size = (bytes: number): number => bytes + GRPC_FRAME_HEADER_BYTES;

test("frames are handed over while the transport takes them; the rest wait, counted", () => {
  const transport = new FakeTransport(2);
  const queue = new SendQueue(transport);
  assert.equal(queue.write(frame(10)), true);
  assert.equal(queue.write(frame(20)), true, "handed over (the transport now asks to wait)");
  assert.equal(queue.write(frame(30)), false, "waits here");
  assert.deepEqual(transport.written, [10, 20]);
  assert.equal(queue.frames, 3);
  assert.equal(queue.bytes, size(10) + size(20) + size(30), "frames in the transport count until their callback");
  transport.flush(1);
  assert.deepEqual(transport.written, [10, 20, 30], "in order, once the transport drains");
  assert.equal(queue.frames, 2);
  assert.equal(queue.bytes, size(20) + size(30));
  transport.flush(2);
  assert.equal(queue.frames, 0);
  assert.equal(queue.bytes, 0);
});

test("clear() lets go of what waits and ignores later writes", () => {
  const transport = new FakeTransport(1);
  const queue = new SendQueue(transport);
  queue.write(frame(10));
  queue.write(frame(1_000));
  queue.write(frame(2_000));
  assert.equal(queue.bytes, size(10) + size(1_000) + size(2_000));
  queue.clear();
  assert.equal(queue.frames, 1, "only the frame the transport holds");
  assert.equal(queue.bytes, size(10));
  assert.equal(queue.write(frame(5)), false);
  transport.flush(1);
  assert.deepEqual(transport.written, [10], "nothing queued before or after clear() is written");
  assert.equal(queue.bytes, 0);
});

test("whenBelow() resolves as frames leave, or when the queue is cleared", async () => {
  const transport = new FakeTransport(1);
  const queue = new SendQueue(transport);
  for (let index = 0; index < 4; index++) queue.write(frame(95));
  const woken: string[] = [];
  await queue.whenBelow(10, 1_000).then(() => woken.push("at once"));
  const half = queue.whenBelow(2, 1_000).then(() => woken.push("two left"));
  const never = queue.whenBelow(0, 0).then(() => woken.push("cleared"));
  transport.flush(1);
  transport.flush(1);
  await half;
  assert.deepEqual(woken, ["at once", "two left"]);
  queue.clear();
  await never;
  assert.deepEqual(woken, ["at once", "two left", "cleared"]);
});

test("a long backlog drains completely and in order", () => {
  const transport = new FakeTransport(16);
  const queue = new SendQueue(transport);
  for (let index = 1; index <= 5_000; index++) queue.write(frame(index));
  while (queue.frames > 0) transport.flush(16);
  assert.equal(transport.written.length, 5_000);
  assert.ok(transport.written.every((bytes, index) => bytes === index + 1));
  assert.equal(queue.bytes, 0);
});

/** The end of the event loop's turn, when a queue with batches hands its frames over. */
const endOfTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

test("with batches, the event frames of one turn, and those queued behind the write in flight, leave as one EventBatch; other frames keep their place", async () => {
  const { encodeEvent, encodePong } = await import("./frames.js");
  const { create, fromBinary } = await import("@bufbuild/protobuf");
  const { ConnectResponseSchema } = await import("../../gen/opal/mesh/v1/distributor_pb.js");
  const { EventSchema } = await import("../../gen/opal/mesh/v1/event_pb.js");
  const event = (position: number): Uint8Array => encodeEvent(create(EventSchema, { position: BigInt(position), topics: ["policy_data"] }));
  const frames: Uint8Array[] = [];
  const callbacks: Array<() => void> = [];
  const transport: FrameTransport = {
    write(frame, callback) {
      frames.push(frame);
      callbacks.push(callback);
      return true;
    },
    on: () => undefined,
  };
  const queue = new SendQueue(transport);
  queue.enableBatches();
  for (const position of [1, 2, 3]) queue.write(event(position));
  assert.equal(frames.length, 0, "handed over at the end of the turn");
  await endOfTurn();
  queue.write(event(4));
  queue.write(encodePong(9n));
  queue.write(event(5));
  queue.write(event(6));
  await endOfTurn();
  assert.equal(frames.length, 1, "one write in flight at a time");
  assert.equal(queue.frames, 7, "events are counted one by one, batched or not");
  const shapes = (): string[] =>
    frames.map((frame) => {
      const message = fromBinary(ConnectResponseSchema, frame).message;
      if (message.case === "events") return `batch ${message.value.events.map((e) => e.position).join(",")}`;
      if (message.case === "event") return `event ${message.value.position}`;
      return message.case ?? "?";
    });
  for (let turn = 0; turn < 3; turn++) (callbacks[turn] as () => void)();
  assert.deepEqual(shapes(), ["batch 1,2,3", "event 4", "pong", "batch 5,6"]);
  (callbacks[3] as () => void)();
  assert.equal(queue.frames, 0);
  assert.equal(queue.bytes, 0);
});

test("with batches, a transport that calls back at once still gets every frame once, in order", async () => {
  const written: Uint8Array[] = [];
  const transport: FrameTransport = {
    write(frame, callback) {
      written.push(frame);
      callback();
      return true;
    },
    on: () => undefined,
  };
  const queue = new SendQueue(transport);
  queue.enableBatches();
  for (let index = 0; index < 5; index++) queue.write(frame(index + 2));
  await endOfTurn();
  assert.deepEqual(written.map((bytes) => bytes.byteLength), [2, 3, 4, 5, 6]);
  assert.equal(queue.frames, 0);
});

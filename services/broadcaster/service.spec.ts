import { test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { BroadcasterService, type SubscribeResponse } from "../../gen/opal/mesh/v1/broadcaster_pb.js";
import { type Event, EventSchema } from "../../gen/opal/mesh/v1/event_pb.js";
import { MemoryLog } from "./memory-log.js";
import { createBroadcasterService } from "./service.js";

/** The service over a memory log, through the real Connect stack in memory. */
function broadcaster(limits = { maxEvents: 100, maxBytes: 1 << 20 }) {
  const log = new MemoryLog(limits);
  const client = createClient(BroadcasterService, createRouterTransport((router) => router.service(BroadcasterService, createBroadcasterService(log))));
  return { log, client };
}

function event(topics: string[], id = topics.join("+")): Event {
  return create(EventSchema, { topics, payload: { case: "dataUpdate", value: { id } } });
}

/** A subscription read one message at a time (so a test can publish after `started`), cancelled by `close`. */
function subscription(stream: (signal: AbortSignal) => AsyncIterable<SubscribeResponse>) {
  const controller = new AbortController();
  const iterator = stream(controller.signal)[Symbol.asyncIterator]();
  return {
    async next(): Promise<SubscribeResponse> {
      const result = await iterator.next();
      assert.ok(result.done !== true, "the subscription ended early");
      return result.value;
    },
    close: () => controller.abort(),
  };
}

function startedOf(message: SubscribeResponse) {
  assert.equal(message.message.case, "started");
  return message.message.case === "started" ? message.message.value : assert.fail("not started");
}

function positionOf(message: SubscribeResponse): bigint {
  return message.message.case === "event" ? message.message.value.position : assert.fail(`not an event: ${message.message.case}`);
}

test("publish: positions in the order of the events, one after another across calls", async () => {
  const { client } = broadcaster();
  assert.deepEqual((await client.publish({ events: [event(["a"]), event(["b"])] })).positions, [1n, 2n]);
  assert.deepEqual((await client.publish({ events: [event(["c"])] })).positions, [3n]);
  assert.equal((await client.head({})).headPosition, 3n);
});

for (const [name, bad, message] of [
  ["an event without a payload", create(EventSchema, { topics: ["a"] }), /events\[1\]: has no payload/],
  ["an event without topics", event([]), /events\[1\]\.topics: must name at least one topic/],
] as const) {
  test(`publish refuses ${name} (INVALID_ARGUMENT, naming it) and appends none of the batch`, async () => {
    const { client, log } = broadcaster();
    await assert.rejects(client.publish({ events: [event(["ok"]), bad] }), (error: unknown) => {
      assert.ok(error instanceof ConnectError);
      assert.equal(error.code, Code.InvalidArgument);
      assert.match(error.message, message);
      return true;
    });
    assert.equal(log.head().headPosition, 0n, "the valid event before it was not appended either");
  });
}

test("head: the newest and oldest retained positions and the log's id", async () => {
  const { client, log } = broadcaster({ maxEvents: 2, maxBytes: 1 << 20 });
  await client.publish({ events: [event(["a"]), event(["b"]), event(["c"])] });
  const head = await client.head({});
  assert.equal(head.headPosition, 3n);
  assert.equal(head.firstRetainedPosition, 2n);
  assert.equal(head.logId, log.logId);
});

test("subscribe: started first, then the events after the position, only those on the topics asked for", async () => {
  const { client } = broadcaster();
  await client.publish({ events: [event(["a"]), event(["b"]), event(["a", "c"]), event(["b"]), event(["c"])] });
  const subscribed = subscription((signal) => client.subscribe({ afterPosition: 1n, topics: ["a", "c"] }, { signal }));
  try {
    const started = startedOf(await subscribed.next());
    assert.equal(started.headPosition, 5n);
    assert.equal(started.truncated, false);
    assert.equal(positionOf(await subscribed.next()), 3n);
    assert.equal(positionOf(await subscribed.next()), 5n, "position 4 is on topic b only");
  } finally {
    subscribed.close();
  }
});

test("subscribe from the head: only events published afterwards", async () => {
  const { client } = broadcaster();
  await client.publish({ events: [event(["a"])] });
  const subscribed = subscription((signal) => client.subscribe({ fromHead: true }, { signal }));
  try {
    assert.equal(startedOf(await subscribed.next()).headPosition, 1n);
    const [later] = (await client.publish({ events: [event(["a"], "later")] })).positions;
    assert.equal(positionOf(await subscribed.next()), later);
  } finally {
    subscribed.close();
  }
});

for (const [name, after] of [
  ["behind the retained range", 0n],
  ["beyond the head (another log's position)", 99n],
] as const) {
  test(`subscribe ${name}: started says truncated, and events follow from the head`, async () => {
    const { client } = broadcaster({ maxEvents: 2, maxBytes: 1 << 20 });
    await client.publish({ events: [event(["a"]), event(["a"]), event(["a"])] });
    const subscribed = subscription((signal) => client.subscribe({ afterPosition: after }, { signal }));
    try {
      const started = startedOf(await subscribed.next());
      assert.equal(started.truncated, true);
      assert.equal(started.firstRetainedPosition, 2n);
      await client.publish({ events: [event(["a"], "after the resync")] });
      assert.equal(positionOf(await subscribed.next()), 4n, "nothing older than the head is replayed");
    } finally {
      subscribed.close();
    }
  });
}

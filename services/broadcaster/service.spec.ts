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

function inline(path: string, json: string, id = path): Event {
  return create(EventSchema, { topics: ["t"], payload: { case: "dataUpdate", value: { id, entries: [{ dstPath: path, topics: ["t"], dataJson: Buffer.from(json) }] } } });
}

test("readSnapshot: a header at the log's position, then the folded items in replay order", async () => {
  const { client } = broadcaster({ maxEvents: 2, maxBytes: 1 << 20 });
  await client.publish({ events: [inline("/a", "1"), inline("/b", "2"), inline("/a", "3")] });
  const messages = [];
  for await (const message of client.readSnapshot({})) messages.push(message);
  const [first, ...rest] = messages;
  assert.equal(first?.message.case, "header");
  const header = first?.message.case === "header" ? first.message.value : assert.fail("no header");
  assert.equal(header.position, 3n);
  assert.equal(header.incomplete, "");
  const items = rest.flatMap((message) => (message.message.case === "items" ? message.message.value.items : []));
  // The window kept two events; the snapshot kept the log: /b, then /a's last value.
  assert.deepEqual(items.map((item) => [item.entry?.dstPath, Buffer.from(item.entry?.dataJson ?? []).toString()]), [["/b", "2"], ["/a", "3"]]);
});

test("past the snapshot's limit, a publish adding inline data is refused naming the limit; a delete still goes through", async () => {
  const log = new MemoryLog({ maxEvents: 100, maxBytes: 1 << 20 });
  const client = createClient(BroadcasterService, createRouterTransport((router) => router.service(BroadcasterService, createBroadcasterService(log, { snapshotMaxBytes: 2_000 }))));
  await client.publish({ events: [inline("/a", JSON.stringify("x".repeat(1_200)))] });
  const refused = await client.publish({ events: [inline("/b", JSON.stringify("y".repeat(1_200)))] }).then(() => assert.fail("accepted"), (error: unknown) => error);
  assert.ok(refused instanceof ConnectError);
  assert.equal(refused.code, Code.ResourceExhausted);
  assert.match(refused.rawMessage, /OPAL_MESH_SNAPSHOT_MAX_BYTES \(2000\)/);
  assert.equal(log.head().headPosition, 1n, "nothing of the refused publish was appended");
  const deleted = create(EventSchema, { topics: ["t"], payload: { case: "dataUpdate", value: { id: "d", entries: [{ dstPath: "/a", topics: ["t"], saveMethod: 3 }] } } });
  assert.deepEqual((await client.publish({ events: [deleted] })).positions, [2n]);
});

import { test } from "node:test";
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { Code, ConnectError, createClient, createRouterTransport, type Interceptor } from "@connectrpc/connect";
import { BroadcasterService } from "../../gen/opal/mesh/v1/broadcaster_pb.js";
import { create, fromJson, type JsonValue } from "@bufbuild/protobuf";
import { PublishDataUpdateRequestSchema, type PublishStreamRequest, PublishStreamRequestSchema, type PublishStreamResult, TriggerService } from "../../gen/opal/mesh/v1/trigger_pb.js";
import { createBroadcasterService, MemoryLog } from "../broadcaster/index.js";
import { PRINCIPAL } from "../common/auth/security.js";
import { AuthError, type Principal } from "../common/auth/tokens.js";
import { createLogger } from "../common/logger.js";
import { Tracing, traceIdOf } from "../common/telemetry/tracing.js";
import type { TelemetryConfig } from "../common/config/telemetry-config.js";
import { DeliveryStatusReader } from "./delivery-status.js";
import { EventBatcher } from "./event-batcher.js";
import { triggerInterceptors } from "./interceptors.js";
import type { PublishStreamLimits } from "./publish-stream.js";
import { createTriggerService } from "./service.js";

const PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
// Spans are never exported here: the batch waits an hour, and the spec ends long before.
const traced: TelemetryConfig = { exporter: "console", protocol: "http/protobuf", endpoint: "http://localhost:4318/v1/traces", headers: {}, serviceName: "t", sampler: "parentbased_always_on", samplerRatio: 1, batchDelayMs: 3_600_000 };

/**
 * The trigger over a real broadcaster on a memory log, both through the Connect stack in
 * memory, with the interceptors the server process registers. No distributor: nobody
 * knows any update's delivery.
 */
function trigger(options: { tracing?: Tracing; refuseTopic?: string; streamLimits?: Partial<PublishStreamLimits>; principal?: Principal } = {}) {
  const log = new MemoryLog({ maxEvents: 100, maxBytes: 1 << 20 });
  const broadcaster = createClient(BroadcasterService, createRouterTransport((router) => router.service(BroadcasterService, createBroadcasterService(log))));
  const lines: Array<Record<string, unknown>> = [];
  const logger = createLogger(
    { level: "info", format: "json" },
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split("\n").filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    }),
  );
  const authorizeTopics = async (_principal: Principal | undefined, topics: string[]): Promise<void> => {
    if (options.refuseTopic !== undefined && topics.includes(options.refuseTopic)) throw new AuthError(`may not publish to ${options.refuseTopic}`, 403);
  };
  const impl = createTriggerService({
    sink: { broadcaster, batcher: new EventBatcher(broadcaster) },
    delivery: new DeliveryStatusReader(() => []),
    logger,
    authorizeTopics,
    updateLimits: { maxEntries: 3 },
    tracing: options.tracing,
    logName: "opal-mesh-events",
    streamLimits: options.streamLimits,
  });
  // The caller as the auth interceptor would have left it.
  const authenticated: Interceptor = (next) => async (call) => {
    if (options.principal !== undefined) call.contextValues.set(PRINCIPAL, options.principal);
    return next(call);
  };
  const interceptors = [authenticated, ...triggerInterceptors({ tracing: options.tracing, logger })];
  const client = createClient(TriggerService, createRouterTransport((router) => router.service(TriggerService, impl), { router: { interceptors } }));
  return { client, log, lines };
}

const entry = { topics: ["policy_data"], dst_path: "/config", data: { level: 3 } };

/** A request as a publisher writes it (natural JSON: `data` is a google.protobuf.Value). */
function request(entries: readonly JsonValue[]) {
  return fromJson(PublishDataUpdateRequestSchema, { entries: [...entries] });
}

async function refusal(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (error) {
    return ConnectError.from(error);
  }
  assert.fail("the call was expected to be refused");
}

test("publish: the update is logged once, with an id, at the position returned, and the log line says so", async () => {
  const { client, log, lines } = trigger();
  const answer = await client.publishDataUpdate(request([entry, { ...entry, topics: ["other", "policy_data"] }]));
  assert.equal(answer.status, "ok");
  assert.match(answer.id, /^[0-9a-f]{32}$/);
  assert.equal(answer.position, 1n);
  const [event] = log.eventsAfter(0n);
  assert.deepEqual(event?.topics.sort(), ["other", "policy_data"], "sent whole to the union of its topics");
  assert.equal(event?.payload.case === "dataUpdate" ? event.payload.value.id : undefined, answer.id);
  const published = lines.filter((line) => line.msg === "data update published");
  assert.deepEqual(published.map((line) => [line.updateId, line.position, line.entries]), [[answer.id, "1", 2]]);
});

for (const [name, entries, field] of [
  ["an entry with an unknown save_method", [{ ...entry, save_method: "POST" }], /entries\[0\]\.save_method/],
  ["more entries than OPAL_MESH_MAX_ENTRIES_PER_UPDATE", [entry, entry, entry, entry], /OPAL_MESH_MAX_ENTRIES_PER_UPDATE/],
] as const) {
  test(`publish refuses ${name}: INVALID_ARGUMENT naming the field, nothing logged`, async () => {
    const { client, log, lines } = trigger();
    const error = await refusal(client.publishDataUpdate(request(entries)));
    assert.equal(error.code, Code.InvalidArgument);
    assert.match(error.message, field);
    assert.equal(log.head().headPosition, 0n);
    assert.equal(lines.filter((line) => line.msg === "data update published").length, 0);
  });
}

test("publish to a topic the caller may not use: PERMISSION_DENIED, nothing logged", async () => {
  const { client, log } = trigger({ refuseTopic: "secret" });
  const error = await refusal(client.publishDataUpdate(request([{ ...entry, topics: ["secret"] }])));
  assert.equal(error.code, Code.PermissionDenied);
  assert.match(error.message, /may not publish to secret/);
  assert.equal(log.head().headPosition, 0n);
});

test("traced: the logged event continues the caller's trace, under the trigger's server span", async () => {
  const tracing = Tracing.create(traced);
  try {
    const { client, log } = trigger({ tracing });
    await client.publishDataUpdate(request([entry]), { headers: { traceparent: PARENT } });
    const carrier = log.eventsAfter(0n)[0]?.traceContext;
    assert.equal(traceIdOf(carrier?.traceparent), "0af7651916cd43dd8448eb211c80319c");
    assert.notEqual(carrier?.traceparent.split("-")[2], "b7ad6b7169203331", "the event names the publish span, not the caller's");
  } finally {
    await tracing.shutdown();
  }
});

test("untraced: no trace context is written into the event", async () => {
  const { client, log } = trigger();
  await client.publishDataUpdate(request([entry]), { headers: { traceparent: PARENT } });
  assert.equal(log.eventsAfter(0n)[0]?.traceContext, undefined);
});

test("status of an update no distributor knows: NOT_FOUND naming it", async () => {
  const { client } = trigger();
  const error = await refusal(client.getUpdateStatus({ updateId: "nope" }));
  assert.equal(error.code, Code.NotFound);
  assert.match(error.message, /"nope"/);
});

/** Stream requests of `perMessage` updates each; `made` counts the messages the server asked for. */
function streamOf(updates: readonly ReturnType<typeof request>[], perMessage: number, made = { count: 0 }): AsyncIterable<PublishStreamRequest> {
  return (async function* () {
    for (let start = 0; start < updates.length; start += perMessage) {
      made.count++;
      yield create(PublishStreamRequestSchema, { updates: updates.slice(start, start + perMessage) });
    }
  })();
}

async function results(responses: AsyncIterable<{ results: PublishStreamResult[] }>): Promise<PublishStreamResult[]> {
  const all: PublishStreamResult[] = [];
  for await (const response of responses) all.push(...response.results);
  return all;
}

const valueEntry = (value: number) => ({ ...entry, dst_path: "/stream", data: { value } });

test("stream: updates across messages are numbered in arrival order, appended in that order and logged once each", async () => {
  const { client, log, lines } = trigger();
  const updates = Array.from({ length: 25 }, (_, value) => request([valueEntry(value)]));
  const answered = await results(client.publishStream(streamOf(updates, 4)));
  assert.deepEqual(answered.map((result) => result.index), Array.from({ length: 25 }, (_, index) => BigInt(index)));
  assert.deepEqual(answered.map((result) => result.position), Array.from({ length: 25 }, (_, index) => BigInt(index + 1)), "positions follow the indexes");
  const logged = log.eventsAfter(0n).map((event) => (event.payload.case === "dataUpdate" ? event.payload.value.id : ""));
  assert.deepEqual(logged, answered.map((result) => result.id));
  assert.equal(lines.filter((line) => line.msg === "data update published").length, 25);
});

test("stream: a refused update gets its own error naming the field, and the others are appended", async () => {
  const { client, log } = trigger({ refuseTopic: "secret" });
  const updates = [request([valueEntry(0)]), request([{ ...entry, save_method: "POST" }]), request([valueEntry(2)]), request([{ ...entry, topics: ["secret"] }]), request([valueEntry(4)])];
  const answered = await results(client.publishStream(streamOf(updates, 2)));
  assert.deepEqual(answered.map((result) => [Number(result.index), result.error?.code ?? "ok"]), [[0, "ok"], [1, "INVALID_ARGUMENT"], [2, "ok"], [3, "PERMISSION_DENIED"], [4, "ok"]]);
  assert.equal(answered[1]?.error?.field, "entries[0].save_method");
  assert.match(answered[1]?.error?.message ?? "", /^entries\[0\]\.save_method: /);
  assert.match(answered[3]?.error?.message ?? "", /may not publish to secret/);
  assert.equal(answered[1]?.position, 0n, "a refused update has no position");
  assert.deepEqual(log.eventsAfter(0n).map((event) => (event.payload.case === "dataUpdate" ? event.payload.value.entries[0]?.dstPath : "")), ["/stream", "/stream", "/stream"]);
});

test("stream: an update with wait gets a second result with its delivery", async () => {
  const { client } = trigger();
  const waited = fromJson(PublishDataUpdateRequestSchema, { entries: [valueEntry(1)], wait: true, wait_timeout_ms: 1000 });
  const answered = await results(client.publishStream(streamOf([request([valueEntry(0)]), waited], 2)));
  assert.deepEqual(answered.map((result) => [Number(result.index), result.delivery !== undefined]), [[0, false], [1, false], [1, true]]);
  assert.equal(answered[2]?.delivery?.known, false, "no distributor here knows it");
  assert.equal(answered[2]?.position, answered[1]?.position);
});

test("stream: the server stops reading while a caller does not read its results", async () => {
  const { client, log } = trigger({ streamLimits: { maxUnansweredUpdates: 4, maxResultsPerMessage: 1 } });
  const made = { count: 0 };
  const updates = Array.from({ length: 200 }, (_, value) => request([valueEntry(value)]));
  const responses = client.publishStream(streamOf(updates, 1, made))[Symbol.asyncIterator]();
  const first = await responses.next();
  assert.equal(first.done, false);
  // Let the server run as far as it will: appends and result writes each take a turn or two.
  for (let turn = 0; turn < 50; turn++) await new Promise((resolve) => setImmediate(resolve));
  assert.ok(made.count < 20, `read ${made.count} of 200 messages with 4 updates unanswered at most`);
  assert.ok(log.head().headPosition < 20n, `appended ${log.head().headPosition}`);
  let answered = 1;
  for (let next = await responses.next(); next.done !== true; next = await responses.next()) answered += next.value.results.length;
  assert.equal(answered, 200, "every update answered once the caller reads");
  assert.equal(log.head().headPosition, 200n);
});

test("stream, traced: each update's event continues the stream's trace in a span of its own", async () => {
  const tracing = Tracing.create(traced);
  try {
    const { client, log } = trigger({ tracing });
    await results(client.publishStream(streamOf([request([valueEntry(0)]), request([valueEntry(1)])], 2), { headers: { traceparent: PARENT } }));
    const carriers = log.eventsAfter(0n).map((event) => event.traceContext?.traceparent);
    assert.deepEqual(carriers.map(traceIdOf), ["0af7651916cd43dd8448eb211c80319c", "0af7651916cd43dd8448eb211c80319c"]);
    assert.equal(new Set(carriers.map((carrier) => carrier?.split("-")[2])).size, 2, "one publish span per update");
  } finally {
    await tracing.shutdown();
  }
});

test("stream: once the stream's token expired, each update is refused UNAUTHENTICATED", async () => {
  const now = Math.floor(Date.now() / 1000);
  const datasource = (exp: number): Principal => ({ subject: "s", peerType: "datasource", permittedTopics: undefined, allowedScopes: undefined, claims: { exp } });
  const expired = await results(trigger({ principal: datasource(now - 1) }).client.publishStream(streamOf([request([valueEntry(0)])], 1)));
  assert.equal(expired[0]?.error?.code, "UNAUTHENTICATED");
  assert.match(expired[0]?.error?.message ?? "", /token expired at .*open a new stream/);
  const valid = await results(trigger({ principal: datasource(now + 3600) }).client.publishStream(streamOf([request([valueEntry(0)])], 1)));
  assert.equal(valid[0]?.error, undefined);
});

/**
 * The throughput scenario's load generator, in its own process: publish calls (one event
 * each, inline data {"value": n} at one document) with many in flight. `grpc`:
 * TriggerService.PublishDataUpdate over one HTTP/2 connection (grpc-js, the cheapest
 * gRPC client here); `rest`: OPAL's POST /data/config over pipelined HTTP/1.1
 * keep-alive connections (undici); `stream`: TriggerService.PublishStream, one stream with
 * <concurrency> updates unanswered and up to --per-message updates in each request message
 * (services/mesh/cli/publish-stream-client.ts, grpc-js).
 *
 *   --server <url> --protocol grpc|rest|stream --concurrency <calls in flight> --document <dst_path> [--per-message <n>]
 *
 * Answers "start" (publish until "finish"), "limit" (publish no further than this
 * position: the bench process bounds the backlog ahead of the slowest client), "stats"
 * (published so far) and "finish" (stop, wait for the calls in flight, report the newest
 * position and its value).
 */
import * as grpc from "@grpc/grpc-js";
import { create } from "@bufbuild/protobuf";
import { Pool } from "undici";
import { type PublishDataUpdateRequest, PublishDataUpdateRequestSchema, type PublishDataUpdateResponse, TriggerService } from "../../gen/opal/mesh/v1/trigger_pb.js";
import { grpcServiceDefinition } from "../../services/common/grpc/service-definition.js";
import { StreamPublisher } from "../../services/mesh/cli/publish-stream-client.js";
import { argument, serve } from "./host-ipc.js";

const serverUrl = argument("server");
const concurrency = Number(argument("concurrency", "64"));
const document = argument("document");
const protocol = argument("protocol", "grpc");
const perMessage = Number(argument("per-message", "64"));

/** {"value": n} as the request's google.protobuf.Value. */
const valueData = (value: number) => ({ kind: { case: "structValue" as const, value: { fields: { value: { kind: { case: "numberValue" as const, value } } } } } });

/** Publishes {"value": n} at the document; resolves with the position the log gave it. */
function publisher(): (value: number) => Promise<bigint> {
  if (protocol === "stream") {
    const stream = new StreamPublisher({ url: serverUrl, maxUnanswered: concurrency, maxUpdatesPerMessage: perMessage });
    return async (value) => {
      const outcome = await stream.publish({ entries: [{ dstPath: document, topics: ["policy_data"], data: valueData(value) }], reason: "bench" });
      if (outcome.error !== undefined) throw new Error(`PublishStream: ${outcome.error.code} ${outcome.error.message}`);
      return outcome.position;
    };
  }
  if (protocol === "rest") {
    const pool = new Pool(serverUrl, { connections: 8, pipelining: 16 });
    return async (value) => {
      const response = await pool.request({
        method: "POST",
        path: "/data/config",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ entries: [{ dst_path: document, topics: ["policy_data"], data: { value } }], reason: "bench" }),
        // undici pipelines a POST only when told it may (idempotent, not blocking): without
        // these, 8 connections carried 8 calls in flight, not the concurrency asked for.
        idempotent: true,
        blocking: false,
      });
      const answer = (await response.body.json()) as { position?: number; detail?: unknown };
      if (response.statusCode !== 200 || answer.position === undefined) throw new Error(`POST /data/config: ${response.statusCode} ${JSON.stringify(answer)}`);
      return BigInt(answer.position);
    };
  }
  if (protocol !== "grpc") throw new Error(`--protocol grpc|rest|stream, not ${protocol}`);
  const Client = grpc.makeGenericClientConstructor(grpcServiceDefinition(TriggerService), "TriggerService");
  const client = new Client(new URL(serverUrl).host, grpc.credentials.createInsecure()) as unknown as {
    publishDataUpdate(request: PublishDataUpdateRequest, callback: (error: grpc.ServiceError | null, response?: PublishDataUpdateResponse) => void): void;
  };
  return (value) =>
    new Promise((resolve, reject) => {
      const request = create(PublishDataUpdateRequestSchema, { entries: [{ dstPath: document, topics: ["policy_data"], data: valueData(value) }] });
      client.publishDataUpdate(request, (error, response) => (error === null && response !== undefined ? resolve(response.position) : reject(error ?? new Error("no response"))));
    });
}
const publish = publisher();

let running = false;
let published = 0;
let failed = 0;
let lastError = "";
let value = 0;
/** The newest position the log gave, and the value published at it (what every OPA must end with). */
let newest = { position: 0n, value: 0 };
let workers: Array<Promise<void>> = [];
/** The bench process keeps the publisher at most so far ahead of the slowest client ("limit"). */
let limit = Number.POSITIVE_INFINITY;

async function worker(): Promise<void> {
  while (running) {
    if (Number(newest.position) >= limit) {
      await new Promise((resolve) => setTimeout(resolve, 2));
      continue;
    }
    const mine = ++value;
    try {
      const position = await publish(mine);
      published++;
      if (position > newest.position) newest = { position, value: mine };
    } catch (error) {
      failed++;
      lastError = (error as Error).message;
    }
  }
}

serve(async (request) => {
  switch (request.type) {
    case "start":
      running = true;
      workers = Array.from({ length: concurrency }, () => worker());
      return {};
    case "limit":
      limit = Number(request.position);
      return {};
    case "stats":
      return { published, failed };
    case "finish":
    case "stop":
      running = false;
      await Promise.all(workers);
      return { published, failed, lastError, position: newest.position.toString(), value: newest.value };
    default:
      throw new Error(`unknown request ${request.type}`);
  }
});
process.send?.({ type: "ready" });
process.on("disconnect", () => process.exit(0));

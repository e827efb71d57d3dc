/**
 * The publishing surfaces: Connect JSON (curl), a standard gRPC client over cleartext
 * HTTP/2 on the same port, OPAL's REST route; bad input is refused with a message
 * naming the field, and nothing is published.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { request } from "undici";
import { type PublishDataUpdateResponse, PublishDataUpdateRequestSchema, TriggerService } from "../gen/opal/mesh/v1/trigger_pb.js";
import { grpcServiceDefinition } from "../services/common/grpc/service-definition.js";
import { type RunningClient, type RunningServer, startClient, startServer, waitForData, waitReady } from "./helpers/mesh.js";

let server: RunningServer;
let client: RunningClient;

async function head(): Promise<number> {
  const response = await request(`${server.url}/healthcheck`);
  return ((await response.body.json()) as { head_position: number }).head_position;
}

async function post(path: string, body: string, contentType = "application/json"): Promise<{ status: number; json: unknown }> {
  const response = await request(`${server.url}${path}`, { method: "POST", headers: { "content-type": contentType }, body });
  const text = await response.body.text();
  return { status: response.statusCode, json: text === "" ? undefined : (JSON.parse(text) as unknown) };
}

before(async () => {
  server = await startServer();
  client = await startClient(server.url);
  await waitReady(client);
});

after(async () => {
  await client?.stop();
  await server?.stop();
});

test("a standard gRPC client publishes over cleartext HTTP/2 on the server port", async () => {
  const Client = grpc.makeGenericClientConstructor(grpcServiceDefinition(TriggerService), "TriggerService");
  const grpcClient = new Client(new URL(server.url).host, grpc.credentials.createInsecure());
  try {
    const request = create(PublishDataUpdateRequestSchema, {
      entries: [{ dstPath: "/grpc", topics: ["policy_data"], data: { kind: { case: "stringValue", value: "hello over gRPC" } } }],
    });
    const response = await new Promise<PublishDataUpdateResponse>((resolve, reject) => {
      (grpcClient as unknown as { publishDataUpdate: (req: unknown, cb: (error: Error | null, res: PublishDataUpdateResponse) => void) => void }).publishDataUpdate(request, (error, res) =>
        error ? reject(error) : resolve(res),
      );
    });
    assert.equal(response.status, "ok");
    assert.ok(response.position > 0n);
    await waitForData(client, "/grpc", "hello over gRPC");
  } finally {
    grpcClient.close();
  }
});

test("Connect JSON takes OPAL's field names and natural JSON data", async () => {
  const { status, json } = await post(
    "/opal.mesh.v1.TriggerService/PublishDataUpdate",
    JSON.stringify({ id: "my-update-id", entries: [{ dst_path: "connect/json", data: { nested: [1, 2, { a: null }] }, topics: ["policy_data"] }], reason: "curl" }),
  );
  assert.equal(status, 200);
  assert.equal((json as { id: string }).id, "my-update-id");
  await waitForData(client, "/connect/json", { nested: [1, 2, { a: null }] });
});

describe("invalid input is refused, naming the field, and nothing is published", () => {
  const restCases: Array<[string, string, number, RegExp]> = [
    ["body that is not JSON", "{entries: [", 400, /not valid JSON/],
    ["body that is not an object", "[1, 2]", 422, /DataUpdate/],
    ["no entries", JSON.stringify({ entries: [] }), 422, /entries/],
    ["unknown save_method", JSON.stringify({ entries: [{ url: "http://x/y", save_method: "UPSERT" }] }), 422, /save_method/],
    ["PATCH data that is not a JSON Patch list", JSON.stringify({ entries: [{ data: { a: 1 }, save_method: "PATCH" }] }), 422, /JSON Patch/],
    ["PATCH operation without value", JSON.stringify({ entries: [{ data: [{ op: "add", path: "/a" }], save_method: "PATCH" }] }), 422, /requires a value/],
    ["empty url and no data", JSON.stringify({ entries: [{ url: "", dst_path: "/x" }] }), 422, /url/],
    ["topics that is not a list", JSON.stringify({ entries: [{ data: 1, topics: "policy_data" }] }), 422, /topics/],
    ["the second entry is bad", JSON.stringify({ entries: [{ data: 1 }, { data: 2, dst_path: "a//b" }] }), 422, /dst_path/],
  ];
  for (const [name, body, status, detail] of restCases) {
    test(`POST /data/config: ${name}`, async () => {
      const before = await head();
      const response = await post("/data/config", body);
      assert.equal(response.status, status);
      assert.match(JSON.stringify(response.json), detail);
      assert.equal(await head(), before, "nothing was published");
    });
  }

  test("FastAPI-style 422 detail locates the field", async () => {
    const response = await post("/data/config", JSON.stringify({ entries: [{ data: 1 }, { url: "http://x", save_method: "MERGE" }] }));
    assert.deepEqual((response.json as { detail: Array<{ loc: unknown[] }> }).detail[0]?.loc, ["body", "entries", 1, "save_method"]);
  });

  test("Connect: InvalidArgument names the field", async () => {
    const before = await head();
    await assert.rejects(server.trigger.publishDataUpdate({ entries: [{ url: "", dstPath: "/x", saveMethod: "PUT" }] }), (error: unknown) => {
      assert.ok(error instanceof ConnectError);
      assert.equal(error.code, Code.InvalidArgument);
      assert.match(error.rawMessage, /entries\[0\]\.url/);
      return true;
    });
    const { status, json } = await post("/opal.mesh.v1.TriggerService/PublishDataUpdate", JSON.stringify({ entries: [{ dst_path: "/x", save_method: "DELETE", data: 1 }] }));
    assert.equal(status, 400);
    assert.equal((json as { code: string }).code, "invalid_argument");
    assert.match((json as { message: string }).message, /entries\[0\]\.data/);
    assert.equal(await head(), before, "nothing was published");
  });
});

test("GET /data/config serves the baseline in OPAL's shape; / and /healthcheck answer", async () => {
  const config = await request(`${server.url}/data/config`);
  assert.equal(config.statusCode, 200);
  assert.deepEqual(await config.body.json(), { entries: [] });
  const root = await request(`${server.url}/`);
  assert.deepEqual(await root.body.json(), { status: "ok" });
  const health = await request(`${server.url}/healthcheck`);
  const report = (await health.body.json()) as { status: string; components: Array<{ component: string; state: string }> };
  assert.equal(health.statusCode, 200);
  assert.deepEqual(report.components.map((component) => component.component).sort(), ["auth", "broadcaster", "distributor", "policy-watcher"]);
});

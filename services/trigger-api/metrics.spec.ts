import { test } from "node:test";
import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import { AuthError } from "../common/auth/tokens.js";
import { HttpError } from "../common/http/json-io.js";
import { Registry } from "../common/telemetry/metrics.js";
import { publishOutcome, TriggerMetrics } from "./metrics.js";

test("publishOutcome", async (t) => {
  const cases: Array<[string, unknown, "refused" | "error"]> = [
    ["invalid body (422)", new HttpError(422, "bad"), "refused"],
    ["unknown scope (404)", new HttpError(404, "no such scope"), "refused"],
    ["forbidden topic", new AuthError("topic not permitted", 403), "refused"],
    ["invalid argument over Connect", new ConnectError("bad", Code.InvalidArgument), "refused"],
    ["permission denied over Connect", new ConnectError("no", Code.PermissionDenied), "refused"],
    ["broadcaster unavailable", new ConnectError("down", Code.Unavailable), "error"],
    ["a 503", new HttpError(503, "down"), "error"],
    ["anything else", new Error("boom"), "error"],
  ];
  for (const [name, error, expected] of cases) await t.test(name, () => assert.equal(publishOutcome(error), expected));
});

test("measure counts each request once, by route and outcome, and rethrows", async () => {
  const registry = new Registry();
  const metrics = new TriggerMetrics(registry);
  assert.equal(await metrics.measure("rest", async () => "published"), "published");
  await assert.rejects(metrics.measure("connect", async () => Promise.reject(new ConnectError("bad", Code.InvalidArgument))), ConnectError);
  await assert.rejects(metrics.measure("connect", async () => Promise.reject(new Error("boom"))), /boom/);
  const text = await registry.metrics();
  assert.match(text, /opal_mesh_trigger_updates_published_total\{route="rest",outcome="ok"\} 1/);
  assert.match(text, /opal_mesh_trigger_updates_published_total\{route="connect",outcome="refused"\} 1/);
  assert.match(text, /opal_mesh_trigger_updates_published_total\{route="connect",outcome="error"\} 1/);
  assert.match(text, /opal_mesh_trigger_updates_published_total\{route="rest",outcome="refused"\} 0/);
  assert.match(text, /opal_mesh_trigger_publish_duration_seconds_count\{route="connect",outcome="error"\} 1/);
});

test("only the publishing routes are measured", async () => {
  const registry = new Registry();
  const handled: string[] = [];
  const routes = new TriggerMetrics(registry).routes(
    [
      { method: "POST", path: "/data/config", auth: "open", handle: () => void handled.push("publish") },
      { method: "GET", path: "/updates/{id}", auth: "open", handle: () => void handled.push("status") },
    ],
    ["/data/config"],
  );
  for (const route of routes) await route.handle({} as never, {} as never, { params: {}, url: new URL("http://localhost/"), signal: new AbortController().signal });
  assert.deepEqual(handled, ["publish", "status"]);
  assert.match(await registry.metrics(), /opal_mesh_trigger_updates_published_total\{route="rest",outcome="ok"\} 1/);
});

/**
 * The embedded data path end to end on real OPA: baseline from a data sources config
 * served over real HTTP, PUT/PATCH/DELETE through Connect and OPAL's REST route, topic
 * filtering, and a failing source.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { request } from "undici";
import { DataSource } from "./helpers/data-source.js";
import { type RunningClient, type RunningServer, startClient, startServer, waitForData, waitReady } from "./helpers/mesh.js";
import { waitFor } from "./helpers/wait.js";

async function postDataConfig(server: RunningServer, body: unknown): Promise<{ status: number; json: unknown }> {
  const response = await request(`${server.url}/data/config`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: response.statusCode, json: await response.body.json() };
}

describe("embedded data path", () => {
  let source: DataSource;
  let server: RunningServer;
  let users: RunningClient;
  let billing: RunningClient;

  before(async () => {
    source = await new DataSource().start();
    source.set("/users", { alice: { roles: ["admin"] }, bob: { roles: ["viewer"] } });
    source.set("/roles", { admin: ["read", "write"], viewer: ["read"] });
    server = await startServer({
      OPAL_DATA_CONFIG_SOURCES: JSON.stringify({
        config: {
          entries: [
            { url: source.url("/users"), topics: ["policy_data/users"], dst_path: "/users" },
            { url: source.url("/roles"), topics: ["policy_data/roles"], dst_path: "roles" },
          ],
        },
      }),
    });
    // One client takes everything under policy_data; the other only billing.
    users = await startClient(server.url, { OPAL_DATA_TOPICS: "policy_data", OPAL_CLIENT_STAT_ID: "users-client" });
    billing = await startClient(server.url, { OPAL_DATA_TOPICS: "billing", OPAL_CLIENT_STAT_ID: "billing-client" });
    await Promise.all([waitReady(users), waitReady(billing)]);
  });

  after(async () => {
    await Promise.all([users?.stop(), billing?.stop()]);
    await server?.stop();
    await source?.stop();
  });

  test("the baseline is loaded from the data sources config over HTTP", async () => {
    assert.deepEqual(await users.read("/users/alice"), { roles: ["admin"] });
    assert.deepEqual(await users.read("/roles"), { admin: ["read", "write"], viewer: ["read"] });
    // Hierarchical topics: the billing client subscribed to neither entry.
    assert.equal(await billing.read("/users"), undefined);
    const report = (await (await request(`${users.apiUrl}/ready`)).body.json()) as { ready: boolean };
    assert.equal(report.ready, true);
  });

  test("PUT through OPAL's REST route reaches OPA", async () => {
    const { status, json } = await postDataConfig(server, {
      entries: [{ url: "", data: { roles: ["admin", "viewer"] }, dst_path: "/users/bob", topics: ["policy_data/users"] }],
      reason: "promote bob",
    });
    assert.equal(status, 200);
    assert.equal((json as { status: string }).status, "ok");
    await waitForData(users, "/users/bob", { roles: ["admin", "viewer"] });
  });

  test("PATCH (JSON Patch) through Connect reaches OPA", async () => {
    await server.trigger.publishDataUpdate({
      entries: [
        {
          dstPath: "/users/alice",
          saveMethod: "PATCH",
          topics: ["policy_data/users"],
          data: { kind: { case: "listValue", value: { values: [{ kind: { case: "structValue", value: { fields: { op: { kind: { case: "stringValue", value: "add" } }, path: { kind: { case: "stringValue", value: "/team" } }, value: { kind: { case: "stringValue", value: "platform" } } } } } }] } } },
        },
      ],
    });
    await waitForData(users, "/users/alice", { roles: ["admin"], team: "platform" });
  });

  test("DELETE through Connect JSON (as curl sends it) removes the document", async () => {
    await postDataConfig(server, { entries: [{ data: { x: 1 }, dst_path: "/tmp/doomed", topics: ["policy_data"] }] });
    await waitForData(users, "/tmp/doomed", { x: 1 });
    const response = await request(`${server.url}/opal.mesh.v1.TriggerService/PublishDataUpdate`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ entries: [{ dst_path: "/tmp/doomed", save_method: "DELETE", topics: ["policy_data"] }] }),
    });
    const body = (await response.body.json()) as { status: string; id: string; position: string };
    assert.equal(response.statusCode, 200);
    assert.equal(body.status, "ok");
    assert.match(body.id, /^[0-9a-f]{32}$/);
    await waitForData(users, "/tmp/doomed", undefined);
  });

  test("a client not subscribed to the topic does not change", async () => {
    await postDataConfig(server, { entries: [{ data: { plan: "gold" }, dst_path: "/billing/acme", topics: ["billing/plans"] }] });
    await postDataConfig(server, { entries: [{ data: { secret: true }, dst_path: "/only/users", topics: ["policy_data/users"] }] });
    await waitForData(billing, "/billing/acme", { plan: "gold" });
    await waitForData(users, "/only/users", { secret: true });
    // Both updates were published before we checked; billing got the first, never the second,
    // and the users client never got billing data.
    assert.equal(await billing.read("/only"), undefined);
    assert.equal(await users.read("/billing"), undefined);
  });

  test("a source answering 500 is retried, reported, and does not stop later updates", async () => {
    source.set("/broken", { error: "boom" }, 500);
    const { json } = await postDataConfig(server, { entries: [{ url: source.url("/broken"), dst_path: "/broken", topics: ["policy_data"] }] });
    const updateId = (json as { id: string }).id;
    // The client's health names the failure...
    const failure = await waitFor(
      async () => {
        const response = await request(`${users.apiUrl}/healthy`);
        const report = (await response.body.json()) as { data: { lastTransaction?: { id: string; error?: string } } };
        return response.statusCode === 503 && report.data.lastTransaction?.id === updateId ? report.data.lastTransaction : undefined;
      },
      { message: "client health to report the failed fetch" },
    );
    assert.match(failure.error ?? "", /answered 500/);
    assert.ok((source.hits.get("/broken") ?? 0) >= 2, "the fetch was retried");
    // ...the distributor got a FAILED ack for it...
    const session = await waitFor(
      async () => (await server.distributor.listClients({})).clients.find((client) => client.clientId === "users-client" && client.lastFailedUpdateId === updateId),
      { message: "a FAILED ack at the distributor" },
    );
    assert.match(session.lastError, /answered 500/);
    // ...and the client goes on applying later updates, and is healthy again.
    await postDataConfig(server, { entries: [{ data: "after", dst_path: "/after_failure", topics: ["policy_data"] }] });
    await waitForData(users, "/after_failure", "after");
    const healthy = await request(`${users.apiUrl}/healthy`);
    assert.equal(healthy.statusCode, 200);
    await healthy.body.dump();
  });
});

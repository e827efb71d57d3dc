/**
 * Client labels (OPAL_MESH_CLIENT_LABELS, issue 16 part 3) on the real embedded server with
 * two real clients (real OPA each): each client's labels travel in its Hello and come back
 * in ListClients, OPAL's /statistics and /pubsub_client_info, and the dashboard's state; a
 * bad label fails the client's start-up naming the variable.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { call } from "./helpers/auth.js";
import { type RunningClient, type RunningServer, startClient, startServer, waitReady } from "./helpers/mesh.js";
import { waitFor } from "./helpers/wait.js";

describe("client labels", () => {
  let server: RunningServer;
  let eu: RunningClient;
  let us: RunningClient;

  before(async () => {
    server = await startServer();
    eu = await startClient(server.url, { OPAL_CLIENT_STAT_ID: "labels-eu", OPAL_MESH_CLIENT_LABELS: "zone=eu,canary=true" });
    us = await startClient(server.url, { OPAL_CLIENT_STAT_ID: "labels-us", OPAL_MESH_CLIENT_LABELS: "zone=us, example.com/tier=gold" });
    await Promise.all([waitReady(eu), waitReady(us)]);
  });

  after(async () => {
    await Promise.all([eu?.stop(), us?.stop()]);
    await server?.stop();
  });

  test("ListClients carries each client's labels", async () => {
    let labels: Record<string, Record<string, string>> = {};
    await waitFor(
      async () => {
        const { clients } = await server.distributor.listClients({});
        labels = Object.fromEntries(clients.map((client) => [client.clientId, client.labels]));
        return Object.keys(labels).length === 2;
      },
      { timeoutMs: 10_000, message: () => `both clients listed, got ${JSON.stringify(labels)}` },
    );
    assert.deepEqual(labels, { "labels-eu": { zone: "eu", canary: "true" }, "labels-us": { zone: "us", "example.com/tier": "gold" } });
  });

  test("OPAL's /statistics channels and /pubsub_client_info entries carry them as labels", async () => {
    const stats = (await call(`${server.url}/statistics`)).json as { clients: Record<string, Array<{ labels: Record<string, string> }>> };
    assert.deepEqual(stats.clients["labels-eu"]?.map((channel) => channel.labels), [{ zone: "eu", canary: "true" }]);
    assert.deepEqual(stats.clients["labels-us"]?.map((channel) => channel.labels), [{ zone: "us", "example.com/tier": "gold" }]);
    const info = (await call(`${server.url}/pubsub_client_info`)).json as Record<string, { labels: Record<string, string> }>;
    assert.deepEqual(info["labels-eu"]?.labels, { zone: "eu", canary: "true" });
    assert.deepEqual(info["labels-us"]?.labels, { zone: "us", "example.com/tier": "gold" });
  });

  test("the dashboard's state lists them, sorted by key", async () => {
    const { status, json } = await call(`${server.url}/dashboard/api/state`);
    assert.equal(status, 200, JSON.stringify(json));
    const clients = (json as { clients: Array<{ client_id: string; labels: Record<string, string> }> }).clients;
    const eu = clients.find((client) => client.client_id === "labels-eu");
    assert.deepEqual(Object.entries(eu?.labels ?? {}), [
      ["canary", "true"],
      ["zone", "eu"],
    ]);
  });

  test("a bad label value fails the client's start-up, naming OPAL_MESH_CLIENT_LABELS and the pair", async () => {
    await assert.rejects(startClient(server.url, { OPAL_CLIENT_STAT_ID: "labels-bad", OPAL_MESH_CLIENT_LABELS: "zone=eu,canary=not ok" }), (error: Error) => {
      assert.match(error.message, /OPAL_MESH_CLIENT_LABELS: "canary=not ok": label "canary": the value "not ok" must be/);
      return true;
    });
    const { clients } = await server.distributor.listClients({});
    assert.equal(clients.filter((client) => client.clientId === "labels-bad").length, 0, "a client that failed its start-up never connects");
  });
});

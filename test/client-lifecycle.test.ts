/**
 * The client over time: periodic refetches, an external OPA, manual refresh, and a
 * server restart (a new in-memory log) after which the client reloads its baseline.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { request } from "undici";
import { DataSource } from "./helpers/data-source.js";
import { type RunningClient, type RunningServer, startClient, startServer, waitForData, waitReady } from "./helpers/mesh.js";
import { opaBinary } from "./helpers/opa.js";
import { freePort } from "./helpers/ports.js";
import { waitFor } from "./helpers/wait.js";

let source: DataSource;

before(async () => {
  source = await new DataSource().start();
});

after(async () => {
  await source?.stop();
});

function baseline(entries: unknown[]): string {
  return JSON.stringify({ config: { entries } });
}

test("periodic_update_interval refetches a baseline source", async () => {
  source.set("/clock", { tick: 1 });
  const server = await startServer({ OPAL_DATA_CONFIG_SOURCES: baseline([{ url: source.url("/clock"), dst_path: "/clock", periodic_update_interval: 0.2 }]) });
  const client = await startClient(server.url);
  try {
    await waitReady(client);
    await waitForData(client, "/clock", { tick: 1 });
    source.set("/clock", { tick: 2 });
    await waitForData(client, "/clock", { tick: 2 });
    assert.ok((source.hits.get("/clock") ?? 0) >= 2);
  } finally {
    await client.stop();
    await server.stop();
  }
});

test("a client keeps an external OPA (OPAL_POLICY_STORE_URL) in sync", async () => {
  const port = await freePort();
  const opa: ChildProcess = spawn(await opaBinary(), ["run", "--server", `--addr=127.0.0.1:${port}`, "--log-level=error"], { stdio: "ignore" });
  const server = await startServer({ OPAL_DATA_CONFIG_SOURCES: baseline([{ url: "", data: { from: "baseline" }, dst_path: "/external" }]) });
  let client: RunningClient | undefined;
  try {
    client = await startClient(server.url, { OPAL_INLINE_OPA_ENABLED: "false", OPAL_POLICY_STORE_URL: `http://127.0.0.1:${port}` });
    await waitReady(client);
    await waitForData(client, "/external", { from: "baseline" });
    await server.trigger.publishDataUpdate({ entries: [{ dstPath: "/external/live", topics: ["policy_data"], data: { kind: { case: "boolValue", value: true } } }] });
    await waitForData(client, "/external/live", true);
  } finally {
    await client?.stop();
    await server.stop();
    opa.kill();
  }
});

test("POST /data-updater/trigger reloads the baseline", async () => {
  source.set("/manual", { version: 1 });
  const server = await startServer({ OPAL_DATA_CONFIG_SOURCES: baseline([{ url: source.url("/manual"), dst_path: "/manual" }]) });
  const client = await startClient(server.url);
  try {
    await waitReady(client);
    await waitForData(client, "/manual", { version: 1 });
    source.set("/manual", { version: 2 });
    const response = await request(`${client.apiUrl}/data-updater/trigger`, { method: "POST" });
    assert.equal(response.statusCode, 200);
    await response.body.dump();
    await waitForData(client, "/manual", { version: 2 });
  } finally {
    await client.stop();
    await server.stop();
  }
});

test("after a server restart (a new log) the client reconnects, reloads its baseline and applies new updates", async () => {
  source.set("/restart", { generation: 1 });
  const ports = { OPAL_SERVER_BIND_PORT: String(await freePort()), OPAL_MESH_STREAM_PORT: String(await freePort()) };
  const env = { ...ports, OPAL_DATA_CONFIG_SOURCES: baseline([{ url: source.url("/restart"), dst_path: "/restart" }]) };
  let server: RunningServer = await startServer(env);
  const client = await startClient(server.url);
  try {
    await waitReady(client);
    await waitForData(client, "/restart", { generation: 1 });
    await server.stop();
    await waitFor(() => !client.agent.health.streamConnected, { message: "the client to notice the server is gone" });
    source.set("/restart", { generation: 2 });
    server = await startServer(env);
    // Positions of the old log mean nothing in the new one: the client loads the baseline again.
    await waitForData(client, "/restart", { generation: 2 });
    await server.trigger.publishDataUpdate({ entries: [{ dstPath: "/after_restart", topics: ["policy_data"], data: { kind: { case: "numberValue", value: 1 } } }] });
    await waitForData(client, "/after_restart", 1);
  } finally {
    await client.stop();
    await server.stop();
  }
});

test("a baseline source that is down at start is retried until it loads; the client is ready only then", async () => {
  source.set("/late", { error: "starting" }, 503);
  source.set("/early", { ok: true });
  const server = await startServer({ OPAL_DATA_CONFIG_SOURCES: baseline([{ url: source.url("/early"), dst_path: "/early" }, { url: source.url("/late"), dst_path: "/late" }]) });
  const client = await startClient(server.url);
  try {
    await waitForData(client, "/early", { ok: true });
    const notReady = await request(`${client.apiUrl}/ready`);
    assert.equal(notReady.statusCode, 503, "not ready while a baseline source is missing (OPAL #801)");
    await notReady.body.dump();
    source.set("/late", { loaded: "eventually" });
    await waitForData(client, "/late", { loaded: "eventually" }, 20_000);
    await waitReady(client);
    assert.equal(((await client.read("/system/opal")) as { ready: boolean }).ready, true);
  } finally {
    await client.stop();
    await server.stop();
  }
});

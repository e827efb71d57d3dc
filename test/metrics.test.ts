/**
 * Prometheus metrics and OPAL's introspection routes on the real embedded server with two
 * real clients (real OPA each): a known sequence of updates moves the counters by exactly
 * what it should, on the server and on each client, and a client that leaves takes its
 * series and its statistics entries with it.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { request } from "undici";
import { authEnv, call, issueToken, rsaKeys } from "./helpers/auth.js";
import { DataSource } from "./helpers/data-source.js";
import { type RunningClient, type RunningServer, startClient, startServer, waitForData, waitReady } from "./helpers/mesh.js";
import { type Metrics, scrape } from "./helpers/metrics.js";
import { waitFor } from "./helpers/wait.js";

const DATA = { kind: "data" };
const HTTP = { kind: "data", provider: "HttpFetchProvider" };

/** POST /data/config?wait=true: answers once every addressed client ACKed. */
async function publishRest(server: RunningServer, url: string, dstPath: string): Promise<{ position: number; delivery: { applied: number; failed: number } }> {
  const { status, json } = await call(`${server.url}/data/config?wait=true&timeout=20`, { method: "POST", body: { entries: [{ url, topics: ["policy_data"], dst_path: dstPath }], reason: "metrics test" } });
  assert.equal(status, 200, JSON.stringify(json));
  return json as { position: number; delivery: { applied: number; failed: number } };
}

function delta(after: Metrics, before: Metrics, name: string, labels: Record<string, string> = {}): number {
  return after.count(name, labels) - before.count(name, labels);
}

describe("metrics", () => {
  let source: DataSource;
  let server: RunningServer;
  let open: RunningClient;
  let fenced: RunningClient;
  let fencedStopped = false;

  before(async () => {
    source = await new DataSource().start();
    for (const id of [1, 2, 3]) source.set(`/ok/${id}`, { id });
    source.set("/restricted/secret", { secret: true });
    server = await startServer();
    open = await startClient(server.url, { OPAL_CLIENT_STAT_ID: "metrics-open" });
    // This one may fetch only under /ok/: the restricted source fails on it alone.
    fenced = await startClient(server.url, { OPAL_CLIENT_STAT_ID: "metrics-fenced", OPAL_FETCH_URL_ALLOWLIST: source.url("/ok/") });
    await Promise.all([waitReady(open), waitReady(fenced)]);
  });

  after(async () => {
    await Promise.all([open?.stop(), fencedStopped ? undefined : fenced?.stop()]);
    await server?.stop();
    await source?.stop();
  });

  test("a known sequence moves every counter by exactly what it did", async () => {
    const before = { server: await scrape(server.url), open: await scrape(open.apiUrl), fenced: await scrape(fenced.apiUrl) };
    assert.equal(before.server.value("opal_mesh_distributor_connected_clients"), 2);
    assert.equal(before.open.value("opal_mesh_client_stream_connected"), 1);
    // Node's process metrics are there too.
    assert.ok(before.server.value("process_cpu_user_seconds_total") !== undefined);

    // Three updates through OPAL's REST route, one through Connect: both clients apply them.
    for (const id of [1, 2]) {
      const answer = await publishRest(server, source.url(`/ok/${id}`), `/metrics/${id}`);
      assert.deepEqual([answer.delivery.applied, answer.delivery.failed], [2, 0]);
    }
    const third = await server.trigger.publishDataUpdate({ entries: [{ url: source.url("/ok/3"), dstPath: "/metrics/3", topics: ["policy_data"] }], wait: true, waitTimeoutMs: 20_000 });
    assert.deepEqual([third.delivery?.applied, third.delivery?.failed], [2, 0]);
    // One whose source the fenced client refuses to fetch.
    const restricted = await publishRest(server, source.url("/restricted/secret"), "/metrics/secret");
    assert.deepEqual([restricted.delivery.applied, restricted.delivery.failed], [1, 1]);
    // And one the trigger-api refuses (not JSON): it reaches no client.
    const refused = await request(`${server.url}/data/config`, { method: "POST", headers: { "content-type": "application/json" }, body: "{" });
    assert.equal(refused.statusCode, 400);
    await refused.body.text();
    for (const client of [open, fenced]) await waitForData(client, "/metrics/3", { id: 3 });
    await waitForData(open, "/metrics/secret", { secret: true });

    const after = { server: await scrape(server.url), open: await scrape(open.apiUrl), fenced: await scrape(fenced.apiUrl) };
    const last = restricted.position;

    // Distributor: 4 updates × 2 clients ACKed, one of them FAILED.
    assert.equal(delta(after.server, before.server, "opal_mesh_distributor_events_delivered_total", DATA), 8);
    assert.equal(delta(after.server, before.server, "opal_mesh_distributor_delivery_latency_seconds_count", DATA), 8);
    assert.equal(delta(after.server, before.server, "opal_mesh_distributor_ack_failures_total", DATA), 1);
    assert.equal(delta(after.server, before.server, "opal_mesh_distributor_events_delivered_total", { kind: "policy" }), 0);
    assert.equal(after.server.value("opal_mesh_distributor_log_head_position"), last);
    assert.equal(after.server.value("opal_mesh_distributor_client_lag_positions", { client_id: "metrics-open" }), 0);
    assert.equal(after.server.value("opal_mesh_distributor_client_lag_positions", { client_id: "metrics-fenced" }), 0);
    // Trigger-api: by route and outcome.
    assert.equal(delta(after.server, before.server, "opal_mesh_trigger_updates_published_total", { route: "rest", outcome: "ok" }), 3);
    assert.equal(delta(after.server, before.server, "opal_mesh_trigger_updates_published_total", { route: "connect", outcome: "ok" }), 1);
    assert.equal(delta(after.server, before.server, "opal_mesh_trigger_updates_published_total", { route: "rest", outcome: "refused" }), 1);
    assert.equal(delta(after.server, before.server, "opal_mesh_trigger_publish_duration_seconds_count"), 5);
    // Broadcaster: what the log took.
    assert.equal(delta(after.server, before.server, "opal_mesh_broadcaster_events_appended_total", { backend: "memory" }), 4);
    assert.equal(delta(after.server, before.server, "opal_mesh_broadcaster_append_errors_total", { backend: "memory" }), 0);

    // Clients: four fetches each; one refused on the fenced client.
    assert.equal(delta(after.open, before.open, "opal_mesh_client_fetch_duration_seconds_count", HTTP), 4);
    assert.equal(delta(after.open, before.open, "opal_mesh_client_fetch_errors_total", HTTP), 0);
    assert.equal(delta(after.fenced, before.fenced, "opal_mesh_client_fetch_duration_seconds_count", HTTP), 4);
    assert.equal(delta(after.fenced, before.fenced, "opal_mesh_client_fetch_errors_total", HTTP), 1);
    assert.equal(delta(after.open, before.open, "opal_mesh_client_updates_applied_total", { kind: "event" }), 4);
    assert.equal(delta(after.fenced, before.fenced, "opal_mesh_client_updates_applied_total", { kind: "event" }), 3);
    assert.equal(delta(after.fenced, before.fenced, "opal_mesh_client_updates_failed_total", { kind: "event" }), 1);
    for (const client of ["open", "fenced"] as const) {
      assert.ok(delta(after[client], before[client], "opal_mesh_client_opa_write_duration_seconds_count", { operation: "data" }) >= 4, `${client}: OPA writes counted`);
      // A failed update still moves the position (it is definitively failed).
      assert.equal(after[client].value("opal_mesh_client_applied_position"), last);
      assert.equal(after[client].value("opal_mesh_client_stream_connected"), 1);
      assert.equal(after[client].value("opal_mesh_client_reconnects_total"), 0);
    }
  });

  test("OPAL's /statistics, /stats and /pubsub_client_info list both clients with their topics", async () => {
    const stats = (await call(`${server.url}/statistics`)).json as { uptime: string; version: string; clients: Record<string, Array<{ rpc_id: string; client_id: string; topics: string[] }>>; servers: string[] };
    assert.deepEqual(Object.keys(stats.clients).sort(), ["metrics-fenced", "metrics-open"]);
    for (const [clientId, channels] of Object.entries(stats.clients)) {
      assert.equal(channels.length, 1);
      assert.equal(channels[0]?.client_id, clientId);
      assert.match(channels[0]?.rpc_id ?? "", /^[0-9a-f-]{36}$/);
      assert.deepEqual([...(channels[0]?.topics ?? [])].sort(), ["policy:.", "policy_data"]);
    }
    assert.equal(stats.servers.length, 1);
    assert.ok(!Number.isNaN(Date.parse(stats.uptime)));
    assert.match(stats.version, /^\d+\.\d+\.\d+/);

    const brief = (await call(`${server.url}/stats`)).json;
    assert.deepEqual(brief, { uptime: stats.uptime, version: stats.version, client_count: 2, server_count: 1 });

    const info = (await call(`${server.url}/pubsub_client_info`)).json as Record<string, { client_id: string; source_host: string; source_port: number; connect_time: number; subscribed_topics: string[]; refcount: number; query_params: object }>;
    assert.deepEqual(Object.keys(info).sort(), ["metrics-fenced", "metrics-open"]);
    const entry = info["metrics-open"];
    assert.equal(entry?.client_id, "metrics-open");
    assert.match(entry?.source_host ?? "", /127\.0\.0\.1|::1/);
    assert.ok((entry?.source_port ?? 0) > 0);
    assert.ok(Math.abs((entry?.connect_time ?? 0) - Date.now() / 1000) < 600);
    assert.deepEqual([...(entry?.subscribed_topics ?? [])].sort(), ["policy:.", "policy_data"]);
    assert.equal(entry?.refcount, 1);
    assert.deepEqual(entry?.query_params, {});
  });

  test("a client that leaves is gone from the metrics and the statistics (no ghosts)", async () => {
    const before = await scrape(fenced.apiUrl);
    assert.equal(before.value("opal_mesh_client_stream_connected"), 1);
    await fenced.stop();
    fencedStopped = true;
    const scraped = await waitFor(
      async () => {
        const metrics = await scrape(server.url);
        return metrics.value("opal_mesh_distributor_connected_clients") === 1 ? metrics : undefined;
      },
      { message: "the server to count one client" },
    );
    assert.equal(scraped.value("opal_mesh_distributor_client_lag_positions", { client_id: "metrics-fenced" }), undefined, "the departed client's lag series is gone");
    assert.equal(scraped.value("opal_mesh_distributor_client_lag_positions", { client_id: "metrics-open" }), 0);
    const stats = (await call(`${server.url}/statistics`)).json as { clients: Record<string, unknown> };
    assert.deepEqual(Object.keys(stats.clients), ["metrics-open"]);
    assert.equal(((await call(`${server.url}/stats`)).json as { client_count: number }).client_count, 1);
    assert.deepEqual(Object.keys((await call(`${server.url}/pubsub_client_info`)).json as object), ["metrics-open"]);
  });
});

describe("introspection on a secured server", () => {
  let server: RunningServer;

  before(async () => {
    server = await startServer(authEnv(rsaKeys()));
  });

  after(async () => {
    await server?.stop();
  });

  test("/statistics, /stats and /pubsub_client_info need a datasource token; /metrics is open to scrapers", async () => {
    for (const path of ["/statistics", "/stats", "/pubsub_client_info"]) assert.equal((await call(`${server.url}${path}`)).status, 401, path);
    const client = await issueToken(server.url, { type: "client" });
    assert.equal((await call(`${server.url}/statistics`, { token: client })).status, 403);
    const datasource = await issueToken(server.url, { type: "datasource" });
    for (const path of ["/statistics", "/stats", "/pubsub_client_info"]) assert.equal((await call(`${server.url}${path}`, { token: datasource })).status, 200, path);
    assert.equal((await scrape(server.url)).value("opal_mesh_distributor_connected_clients"), 0);
  });
});

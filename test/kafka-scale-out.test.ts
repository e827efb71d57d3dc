/**
 * All-in-one servers sharing one Kafka log: an update published to any reaches clients of
 * any other; a client given several server URLs moves on when its server dies and
 * resumes; external producers write OPAL JSON or protobuf straight into the topic;
 * malformed messages are skipped; positions below the log start offset resync.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { create, toBinary } from "@bufbuild/protobuf";
import { Kafka, logLevel } from "kafkajs";
import { EventSchema } from "../gen/opal/mesh/v1/event_pb.js";
import { DeliveryChecker } from "./helpers/checker.js";
import { type RunningKafka, startTestKafka } from "./helpers/kafka.js";
import { call } from "./helpers/auth.js";
import { GitRepo, tempDir } from "./helpers/git-repo.js";
import { decide, type RunningClient, type RunningServer, startClient, startServer, waitForData, waitReady } from "./helpers/mesh.js";
import { freePort } from "./helpers/ports.js";
import { scrape } from "./helpers/metrics.js";
import { MeshProcess } from "./helpers/processes.js";
import { TcpProxy } from "./helpers/tcp-proxy.js";
import { waitFor } from "./helpers/wait.js";

const TOPIC = "opal-mesh-test-events";
let kafka: RunningKafka;
let checker: DeliveryChecker;

before(async () => {
  kafka = await startTestKafka();
  checker = await new DeliveryChecker().start();
});

after(async () => {
  await checker?.source.stop();
  await kafka?.destroy();
});

function kafkaEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    OPAL_BROADCAST_URI: `kafka://${kafka.bootstrap}`,
    OPAL_BROADCAST_CHANNEL_NAME: TOPIC,
    OPAL_MESH_KAFKA_REPLICATION_FACTOR: "1",
    OPAL_DATA_CONFIG_SOURCES: JSON.stringify({ config: { entries: checker.baselineEntries() } }),
    ...extra,
  };
}

describe("two all-in-one servers on one Kafka log", () => {
  let a: RunningServer;
  let b: RunningServer;
  let onA: RunningClient;
  let onB: RunningClient;
  let both: RunningClient;

  before(async () => {
    a = await startServer(kafkaEnv());
    b = await startServer(kafkaEnv());
    onA = await startClient(a.url, { OPAL_CLIENT_STAT_ID: "on-a" });
    onB = await startClient(b.url, { OPAL_CLIENT_STAT_ID: "on-b" });
    both = await startClient(`${a.url},${b.url}`, { OPAL_CLIENT_STAT_ID: "fail-over" });
    await Promise.all([onA, onB, both].map((client) => waitReady(client)));
  });

  after(async () => {
    await Promise.all([onA, onB, both].map((client) => client?.stop()));
    await a?.stop();
    await b?.stop();
  });

  test("an update published to either reaches clients of both, in one order", async () => {
    await checker.publish(a, 100);
    await checker.publish(b, 100);
    for (const client of [onA, onB, both]) await checker.verify(client);
    await checker.same(onA, [{ name: "on-b", reader: onB }, { name: "fail-over", reader: both }]);
  });

  test("publish-and-wait sees clients on every server", async () => {
    const response = await a.trigger.publishDataUpdate({ entries: [{ dstPath: "/everywhere", topics: ["policy_data"], data: { kind: { case: "numberValue", value: 1 } } }], wait: true });
    assert.deepEqual(response.delivery?.clients.map((client) => client.clientId).sort(), ["fail-over", "on-a", "on-b"]);
    assert.equal(response.delivery?.applied, 3);
  });

  test("metrics and /statistics see the whole fleet: the tail's consumer lag drains, every server's clients are listed", async () => {
    for (const server of [a, b]) {
      const metrics = await waitFor(
        async () => {
          const scraped = await scrape(server.url);
          return scraped.value("opal_mesh_broadcaster_kafka_consumer_lag_messages") === 0 ? scraped : undefined;
        },
        { message: "the tail to have read the whole topic" },
      );
      assert.equal(metrics.value("opal_mesh_broadcaster_append_errors_total", { backend: "kafka" }), 0);
      assert.ok(metrics.count("opal_mesh_broadcaster_events_appended_total", { backend: "kafka" }) > 0);
    }
    const stats = await waitFor(
      async () => {
        const answer = (await call(`${a.url}/statistics`)).json as { clients: Record<string, unknown>; servers: string[] };
        return Object.keys(answer.clients).length === 3 ? answer : undefined;
      },
      { message: "server a to list the clients of both servers" },
    );
    assert.deepEqual(Object.keys(stats.clients).sort(), ["fail-over", "on-a", "on-b"]);
    assert.equal(stats.servers.length, 2);
    assert.deepEqual((await call(`${b.url}/stats`)).json, { ...((await call(`${b.url}/stats`)).json as object), client_count: 3, server_count: 2 });
    // The tracker is per server, as OPAL's.
    assert.deepEqual(Object.keys((await call(`${b.url}/pubsub_client_info`)).json as object), ["on-b"]);
  });

  test("external producers: OPAL DataUpdate JSON and protobuf events in the topic; malformed messages skipped", async () => {
    const producer = new Kafka({ brokers: [kafka.bootstrap], logLevel: logLevel.NOTHING }).producer();
    await producer.connect();
    try {
      const protobufEvent = create(EventSchema, { topics: ["policy_data"], payload: { case: "dataUpdate", value: { entries: [{ dstPath: "/external/protobuf", topics: ["policy_data"], dataJson: Buffer.from('"from protobuf"') }] } } });
      await producer.send({
        topic: TOPIC,
        messages: [
          { value: "{ this is not json" },
          { value: JSON.stringify({ entries: [{ url: "", data: "from json", dst_path: "/external/json", topics: ["policy_data"] }], reason: "external" }) },
          { value: Buffer.from([0x08, 0xff, 0xff]), headers: { "content-type": "application/x-protobuf" } },
          { value: Buffer.from(toBinary(EventSchema, protobufEvent)), headers: { "content-type": "application/x-protobuf" } },
          { value: JSON.stringify({ entries: [{ url: "", data: "after the bad ones", dst_path: "/external/last", topics: ["policy_data"] }] }) },
        ],
      });
    } finally {
      await producer.disconnect();
    }
    for (const client of [onA, onB]) {
      await waitForData(client, "/external/last", "after the bad ones");
      assert.equal(await client.read("/external/json"), "from json");
      assert.equal(await client.read("/external/protobuf"), "from protobuf");
    }
    // And the stream goes on.
    await checker.publish(b, 10);
    for (const client of [onA, onB, both]) await checker.verify(client);
    await checker.same(onA, [{ name: "on-b", reader: onB }, { name: "fail-over", reader: both }]);
  });

  test("the example producer in examples/ publishes straight into Kafka", async () => {
    execFileSync(process.execPath, ["--import", "tsx", fileURLToPath(new URL("../examples/kafka-producer.ts", import.meta.url)), kafka.bootstrap, TOPIC], { stdio: "ignore" });
    for (const client of [onA, onB]) {
      await waitForData(client, "/users/bob", { roles: ["editor"] });
      await waitForData(client, "/users/carol", { roles: ["viewer"] });
    }
  });

  test("a client given both servers moves on when its server dies, and resumes", async () => {
    const baselineFetches = checker.source.hits.get("/check");
    await checker.publish(a, 50);
    const serving = both.agent.health.streamConnected;
    assert.ok(serving);
    await a.stop();
    await checker.publish(b, 100);
    await checker.verify(both);
    await checker.verify(onB);
    assert.equal(checker.source.hits.get("/check"), baselineFetches, "resumed on the other server: no baseline reload");
  });
});

describe("positions older than the window, and below Kafka's log start", () => {
  test("are read back from the topic, or resynced", async () => {
    const streamPort = await freePort();
    const proxy = new TcpProxy({ host: "127.0.0.1", port: streamPort });
    const proxyPort = await proxy.start();
    // A tiny window: resuming clients are served from the topic itself.
    const server = await startServer(kafkaEnv({ OPAL_MESH_LOG_RETENTION_EVENTS: "5", OPAL_MESH_STREAM_PORT: String(streamPort), OPAL_MESH_STREAM_PUBLIC_URL: `http://127.0.0.1:${proxyPort}` }));
    const client = await startClient(server.url);
    const admin = new Kafka({ brokers: [kafka.bootstrap], logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    try {
      await waitReady(client);
      await checker.publish(server, 10);
      await checker.verify(client);
      const hits = checker.source.hits.get("/check") ?? 0;

      // Away while 50 updates go by: the window holds 5; the topic holds them all.
      proxy.refuse(true);
      proxy.cut();
      await waitFor(() => !client.agent.health.streamConnected, { message: "the client to drop" });
      await checker.publish(server, 50);
      proxy.refuse(false);
      await checker.verify(client);
      assert.equal(checker.source.hits.get("/check"), hits, "replayed from Kafka, no resync");

      // Away again, and Kafka drops what it missed: Resync, then convergence.
      proxy.refuse(true);
      proxy.cut();
      await waitFor(() => !client.agent.health.streamConnected, { message: "the client to drop" });
      await checker.publish(server, 50);
      const high = Number((await admin.fetchTopicOffsets(TOPIC))[0]?.high);
      await admin.deleteTopicRecords({ topic: TOPIC, partitions: [{ partition: 0, offset: String(high - 3) }] });
      proxy.refuse(false);
      await checker.verify(client);
      assert.ok((checker.source.hits.get("/check") ?? 0) > hits, "the baseline was loaded again");
    } finally {
      await admin.disconnect();
      await client.stop();
      await server.stop();
      await proxy.stop();
    }
  });
});

describe("scopes on Kafka: every replica sees them, and they outlive the servers", () => {
  const env = (): Record<string, string> => kafkaEnv({ OPAL_BROADCAST_CHANNEL_NAME: "opal-mesh-test-scoped", OPAL_SCOPES: "true", OPAL_BASE_DIR: tempDir("opal-mesh-scopes-") });
  const repo = new GitRepo();
  repo.commit({ "rbac/policy.rego": 'package app.rbac\n\ndefault allow := false\n\nallow if input.user == "dana"\n' }, "tenant t1");
  const scopeIds = async (server: RunningServer): Promise<string[]> => ((await call(`${server.url}/scopes`)).json as Array<{ scope_id: string }>).map((scope) => scope.scope_id).sort();

  test("a scope put on one server is served by another, and by a server started after both stopped", async () => {
    const a = await startServer(env());
    const b = await startServer(env());
    let client: RunningClient | undefined;
    try {
      const put = await call(`${a.url}/scopes`, {
        method: "PUT",
        body: { scope_id: "t1", policy: { source_type: "git", url: repo.dir }, data: { config: { entries: [{ url: "", data: { tenant: "t1" }, dst_path: "/tenant", topics: ["policy_data"] }] } } },
      });
      assert.equal(put.status, 201, JSON.stringify(put.json));
      assert.deepEqual(await scopeIds(a), ["t1"], "read-your-writes on the server that stored it");
      await waitFor(async () => (await scopeIds(b)).includes("t1"), { message: () => "server b to see scope t1" });

      client = await startClient(b.url, { OPAL_SCOPE_ID: "t1" });
      await waitReady(client);
      await waitForData(client, "/tenant", { tenant: "t1" });
      assert.equal(await decide(client, "app/rbac/allow", { user: "dana" }), true);
      const update = await call(`${a.url}/scopes/t1/data/update`, { method: "POST", body: { entries: [{ url: "", data: "via a", dst_path: "/news", topics: ["policy_data"] }] } });
      assert.equal(update.status, 200, JSON.stringify(update.json));
      await waitForData(client, "/news", "via a");
    } finally {
      await client?.stop();
      await a.stop();
      await b.stop();
    }

    const c = await startServer(env());
    try {
      assert.deepEqual(await scopeIds(c), ["t1"], "loaded from the compacted topic before serving");
      assert.equal((await call(`${c.url}/scopes/t1`, { method: "DELETE" })).status, 204);
      assert.deepEqual(await scopeIds(c), []);
    } finally {
      await c.stop();
    }
    const d = await startServer(env());
    try {
      assert.deepEqual(await scopeIds(d), [], "the deletion is kept too");
    } finally {
      await d.stop();
    }
  });
});

describe("scopes in the distributed deployment (each service its own process)", () => {
  test("the policy-watcher serves the scopes API; distributors and trigger-apis follow the scopes on Kafka", async () => {
    const topic = "opal-mesh-test-distributed-scopes";
    const processes: MeshProcess[] = [];
    const service = async (command: string, env: Record<string, string>): Promise<string> => {
      const port = await freePort();
      const process = new MeshProcess(
        command,
        { OPAL_SERVER_HOST: "127.0.0.1", OPAL_SERVER_BIND_PORT: String(port), OPAL_BROADCAST_URI: `kafka://${kafka.bootstrap}`, OPAL_BROADCAST_CHANNEL_NAME: topic, OPAL_MESH_KAFKA_REPLICATION_FACTOR: "1", OPAL_SCOPES: "true", ...env },
        `http://127.0.0.1:${port}/healthcheck`,
      );
      processes.push(process);
      await process.ready();
      return `http://127.0.0.1:${port}`;
    };
    const repo = new GitRepo();
    repo.commit({ "rbac/policy.rego": 'package app.rbac\n\ndefault allow := false\n\nallow if input.user == "erin"\n' }, "tenant t2");
    let client: RunningClient | undefined;
    try {
      const broadcaster = await service("broadcaster", {});
      const watcher = await service("policy-watcher", { OPAL_MESH_BROADCASTER_URLS: broadcaster, OPAL_BASE_DIR: tempDir("opal-mesh-scopes-") });
      const distributor = await service("distributor", { OPAL_MESH_BROADCASTER_URLS: broadcaster, OPAL_MESH_POLICY_WATCHER_URLS: watcher, OPAL_MESH_STREAM_PORT: String(await freePort()) });
      const trigger = await service("trigger-api", { OPAL_MESH_BROADCASTER_URLS: broadcaster });

      const put = await call(`${watcher}/scopes`, {
        method: "PUT",
        body: { scope_id: "t2", policy: { source_type: "git", url: repo.dir }, data: { config: { entries: [{ url: "", data: { tenant: "t2" }, dst_path: "/tenant", topics: ["policy_data"] }] } } },
      });
      assert.equal(put.status, 201, JSON.stringify(put.json));
      client = await startClient(distributor, { OPAL_SCOPE_ID: "t2" });
      await waitReady(client);
      await waitForData(client, "/tenant", { tenant: "t2" });
      assert.equal(await decide(client, "app/rbac/allow", { user: "erin" }), true);
      // The trigger-api learns of the scope through Kafka too.
      await waitFor(async () => (await call(`${trigger}/scopes/t2/data/update`, { method: "POST", body: { entries: [{ url: "", data: "via the trigger-api", dst_path: "/news", topics: ["policy_data"] }] } })).status === 200, {
        message: () => "the trigger-api to accept the scoped update",
      });
      await waitForData(client, "/news", "via the trigger-api");
    } finally {
      await client?.stop();
      await Promise.all(processes.map((process) => process.kill("SIGTERM")));
    }
  });
});

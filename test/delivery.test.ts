/**
 * Delivery guarantees under faults, checked by the delivery checker against an ordered
 * replay: a dropped network resumes with no loss and no baseline refetch; a killed OPA is
 * restarted and the client converges; a position older than the log's retention resyncs
 * and converges; a failing source is reported and does not block later updates.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import { DeliveryState } from "../gen/opal/mesh/v1/delivery_pb.js";
import { DeliveryChecker } from "./helpers/checker.js";
import { type RunningClient, type RunningServer, startClient, startServer, waitReady } from "./helpers/mesh.js";
import { freePort } from "./helpers/ports.js";
import { TcpProxy } from "./helpers/tcp-proxy.js";
import { waitFor } from "./helpers/wait.js";

interface Setup {
  checker: DeliveryChecker;
  proxy: TcpProxy;
  server: RunningServer;
  clients: RunningClient[];
  stop(): Promise<void>;
}

/** A server whose client stream is reached through a proxy we can cut. */
async function setup(clientCount: number, serverEnv: Record<string, string> = {}): Promise<Setup> {
  const checker = await new DeliveryChecker().start();
  const streamPort = await freePort();
  const proxy = new TcpProxy({ host: "127.0.0.1", port: streamPort });
  const proxyPort = await proxy.start();
  const server = await startServer({
    OPAL_MESH_STREAM_PORT: String(streamPort),
    OPAL_MESH_STREAM_PUBLIC_URL: `http://127.0.0.1:${proxyPort}`,
    OPAL_DATA_CONFIG_SOURCES: JSON.stringify({ config: { entries: checker.baselineEntries() } }),
    ...serverEnv,
  });
  const clients: RunningClient[] = [];
  for (let index = 0; index < clientCount; index++) clients.push(await startClient(server.url, { OPAL_CLIENT_STAT_ID: `client-${index}` }));
  await Promise.all(clients.map((client) => waitReady(client)));
  return {
    checker,
    proxy,
    server,
    clients,
    async stop() {
      await Promise.all(clients.map((client) => client.stop()));
      await server.stop();
      await proxy.stop();
      await checker.source.stop();
    },
  };
}

describe("a client's network drops mid-stream", () => {
  let s: Setup;
  before(async () => {
    s = await setup(2);
  });
  after(async () => s?.stop());

  test("it resumes from its position: zero lost, zero out of order, no baseline refetch", async () => {
    const baselineFetches = s.checker.source.hits.get("/check");
    const connections = s.proxy.connections;
    await s.checker.publish(s.server, 150);
    s.proxy.cut();
    await s.checker.publish(s.server, 150);
    s.proxy.cut();
    await s.checker.publish(s.server, 100);
    for (const client of s.clients) await s.checker.verify(client);
    await s.checker.same(s.clients[0] as RunningClient, [{ name: "client-1", reader: s.clients[1] as RunningClient }]);
    assert.ok(s.proxy.connections >= connections + 4, "both clients reconnected twice");
    assert.equal(s.checker.source.hits.get("/check"), baselineFetches, "nothing was fetched again");
  });
});

describe("the inline OPA is killed", () => {
  let s: Setup;
  before(async () => {
    s = await setup(1);
  });
  after(async () => s?.stop());

  test("the supervisor restarts it, the client resyncs and converges", async () => {
    const client = s.clients[0] as RunningClient;
    await s.checker.publish(s.server, 100);
    const pid = client.agent.inlineOpaPid;
    assert.ok(pid !== undefined);
    process.kill(pid, "SIGKILL");
    await s.checker.publish(s.server, 100);
    await waitFor(() => client.agent.inlineOpaPid !== pid, { message: "a new OPA process" });
    await s.checker.publish(s.server, 50);
    await s.checker.verify(client);
    assert.equal(((await client.read("/system/opal")) as { ready: boolean }).ready, true);
  });
});

describe("a position older than the log's retention", () => {
  let s: Setup;
  before(async () => {
    s = await setup(1, { OPAL_MESH_LOG_RETENTION_EVENTS: "20" });
  });
  after(async () => s?.stop());

  test("gets Resync; the client loads its baseline and converges", async () => {
    const client = s.clients[0] as RunningClient;
    await s.checker.publish(s.server, 30);
    await s.checker.verify(client);
    const baselineFetches = s.checker.source.hits.get("/check") ?? 0;
    s.proxy.refuse(true);
    s.proxy.cut();
    await waitFor(() => !client.agent.health.streamConnected, { message: "the client to lose its stream" });
    await s.checker.publish(s.server, 200);
    s.proxy.refuse(false);
    await s.checker.verify(client);
    assert.ok((s.checker.source.hits.get("/check") ?? 0) > baselineFetches, "the baseline was loaded again");
  });
});

describe("a data source is down for a while", () => {
  let s: Setup;
  before(async () => {
    s = await setup(2);
  });
  after(async () => s?.stop());

  test("the update is retried, ACKed FAILED and shown in its status; later updates still apply", async () => {
    s.checker.source.set("/flaky", { error: "down" }, 503);
    const failing = await s.server.trigger.publishDataUpdate({ entries: [{ url: s.checker.source.url("/flaky"), dstPath: "/flaky", topics: ["policy_data"] }] });
    await s.checker.publish(s.server, 50);
    for (const client of s.clients) await s.checker.verify(client);
    const status = await waitFor(
      async () => {
        const { status } = await s.server.trigger.getUpdateStatus({ updateId: failing.id });
        return status?.complete === true ? status : undefined;
      },
      { message: "every client to have answered the failing update" },
    );
    assert.equal(status.failed, 2);
    assert.ok(status.clients.every((client) => client.state === DeliveryState.FAILED && /503/.test(client.error)));
    assert.ok((s.checker.source.hits.get("/flaky") ?? 0) >= 4, "each client retried");

    s.checker.source.set("/flaky", { up: true });
    const recovered = await s.server.trigger.publishDataUpdate({ entries: [{ url: s.checker.source.url("/flaky"), dstPath: "/flaky", topics: ["policy_data"] }], wait: true, waitTimeoutMs: 20_000 });
    assert.equal(recovered.delivery?.applied, 2);
    for (const client of s.clients) assert.deepEqual(await client.read("/flaky"), { up: true });
  });
});

describe("publish and wait", () => {
  let s: Setup;
  let extra: RunningClient;
  before(async () => {
    s = await setup(2);
    extra = await startClient(s.server.url, { OPAL_CLIENT_STAT_ID: "client-extra", OPAL_DATA_TOPICS: "policy_data,extra" });
    await waitReady(extra);
  });
  after(async () => {
    await extra?.stop();
    await s?.stop();
  });

  test("returns only after every addressed client applied it", async () => {
    for (let round = 0; round < 10; round++) {
      const response = await s.server.trigger.publishDataUpdate({ entries: [{ dstPath: "/waited", topics: ["policy_data"], data: { kind: { case: "numberValue", value: round } } }], wait: true });
      assert.equal(response.delivery?.complete, true);
      assert.equal(response.delivery?.applied, 3);
      assert.deepEqual(response.delivery?.clients.map((client) => client.clientId), ["client-0", "client-1", "client-extra"]);
      // Already there on every client the moment the call returns.
      for (const client of [...s.clients, extra]) assert.equal(await client.read("/waited"), round);
    }
  });

  test("reports a client that failed, with its error", async () => {
    s.checker.source.set("/broken", "nope", 500);
    const response = await s.server.trigger.publishDataUpdate({
      entries: [
        { dstPath: "/partly", topics: ["policy_data"], data: { kind: { case: "boolValue", value: true } } },
        { url: s.checker.source.url("/broken"), dstPath: "/extra", topics: ["extra"] },
      ],
      wait: true,
    });
    const delivery = response.delivery;
    assert.equal(delivery?.complete, true);
    assert.equal(delivery?.applied, 2);
    assert.equal(delivery?.failed, 1);
    const failed = delivery?.clients.find((client) => client.state === DeliveryState.FAILED);
    assert.equal(failed?.clientId, "client-extra");
    assert.match(failed?.error ?? "", /answered 500/);
    // The failing client still applied the entry that could be applied.
    assert.equal(await extra.read("/partly"), true);
  });

  test("clients that lost their stream are disconnected, not pending: the wait does not wait on them", async () => {
    s.proxy.refuse(true);
    s.proxy.cut();
    await waitFor(() => !s.clients.some((client) => client.agent.health.streamConnected), { message: "clients to lose their stream" });
    // A wait that waited on them would end at its timeout with complete false.
    const response = await s.server.trigger.publishDataUpdate({ entries: [{ dstPath: "/late", topics: ["policy_data"], data: { kind: { case: "numberValue", value: 1 } } }], wait: true, waitTimeoutMs: 60_000 });
    assert.equal(response.delivery?.complete, true);
    assert.equal(response.delivery?.pending, 0);
    assert.equal(response.delivery?.disconnected, 3);
    assert.deepEqual(response.delivery?.clients.map((client) => client.state), [DeliveryState.DISCONNECTED, DeliveryState.DISCONNECTED, DeliveryState.DISCONNECTED]);
    s.proxy.refuse(false);
    // Once back, they resume, apply it and ACK: the same update shows them applied.
    await waitFor(async () => (await s.server.trigger.getUpdateStatus({ updateId: response.id })).status?.applied === 3, { timeoutMs: 20_000, message: "the resumed clients to apply the update" });
  });

  test("an unknown update id is NotFound", async () => {
    await assert.rejects(s.server.trigger.getUpdateStatus({ updateId: "no-such-update" }), (error: unknown) => error instanceof ConnectError && error.code === Code.NotFound);
  });
});

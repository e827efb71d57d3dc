/**
 * 20 clients (each with a real inline OPA) on one embedded server:
 * - catch-up: every client's stream is cut and held down while 1,000 updates are
 *   published; then the time from letting them reconnect until all 20 hold the last one;
 * - publish-and-wait: PublishDataUpdate with wait=true, until all 20 applied it (p50/p99).
 * The server runs in its own process; the clients share this one.
 *
 *   npm run bench:fleet-catchup [-- --clients 20 --missed 1000 --waits 200]
 */
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { request } from "undici";
import { TriggerService } from "../gen/opal/mesh/v1/trigger_pb.js";
import { startClient, type RunningClient } from "../test/helpers/mesh.js";
import { TcpProxy } from "../test/helpers/tcp-proxy.js";
import { freePort, record, runMesh, summary, until } from "./lib.js";

function flag(name: string, fallback: number): number {
  const index = process.argv.indexOf(`--${name}`);
  return index === -1 ? fallback : Number(process.argv[index + 1]);
}
const clientCount = flag("clients", 20);
const missed = flag("missed", 1000);
const waits = flag("waits", 200);

const [serverPort, streamPort] = [await freePort(), await freePort()];
const proxy = new TcpProxy({ host: "127.0.0.1", port: streamPort });
const proxyPort = await proxy.start();
const server = runMesh("server", {
  OPAL_SERVER_BIND_PORT: String(serverPort),
  OPAL_MESH_STREAM_PORT: String(streamPort),
  OPAL_MESH_STREAM_PUBLIC_URL: `http://127.0.0.1:${proxyPort}`,
});
const serverUrl = `http://127.0.0.1:${serverPort}`;
const clients: RunningClient[] = [];
try {
  await until(async () => (await request(`${serverUrl}/healthcheck`)).statusCode === 200, "the server");
  for (let index = 0; index < clientCount; index++) clients.push(await startClient(serverUrl, { OPAL_CLIENT_STAT_ID: `bench-${index}` }));
  await until(async () => clients.every((client) => client.agent.health.isReady()), "clients ready");
  const trigger = createClient(TriggerService, createConnectTransport({ baseUrl: serverUrl, httpVersion: "1.1" }));
  const publish = (value: number, wait = false) =>
    trigger.publishDataUpdate({ entries: [{ dstPath: "/bench/value", topics: ["policy_data"], data: { kind: { case: "numberValue", value } } }], wait, waitTimeoutMs: 30_000 });

  // Catch-up after missing `missed` updates, five rounds. "From reconnect" is per client:
  // from its stream being back to holding the last update; "from network back" adds the
  // clients' reconnect backoff.
  const fromReconnect: number[] = [];
  const fromNetworkBack: number[] = [];
  let value = 0;
  for (let round = 0; round < 5; round++) {
    proxy.refuse(true);
    proxy.cut();
    await until(async () => clients.every((client) => !client.agent.health.streamConnected), "clients to lose their streams");
    for (let index = 0; index < missed; index++) await publish(++value);
    const started = performance.now();
    const reconnected = new Map<RunningClient, number>();
    const caughtUp = new Map<RunningClient, number>();
    proxy.refuse(false);
    await until(async () => {
      for (const client of clients) {
        if (!reconnected.has(client) && client.agent.health.streamConnected) reconnected.set(client, performance.now());
        if (!caughtUp.has(client) && reconnected.has(client) && (await client.read("/bench/value")) === value) caughtUp.set(client, performance.now());
      }
      return caughtUp.size === clients.length;
    }, "every client to catch up", 120_000);
    for (const client of clients) fromReconnect.push((caughtUp.get(client) ?? 0) - (reconnected.get(client) ?? 0));
    fromNetworkBack.push(Math.max(...caughtUp.values()) - started);
  }

  const waited: number[] = [];
  for (let index = 0; index < waits; index++) {
    const started = performance.now();
    const response = await publish(++value, true);
    waited.push(performance.now() - started);
    if (response.delivery?.applied !== clientCount) throw new Error(`publish-and-wait returned with ${response.delivery?.applied} of ${clientCount} applied`);
  }
  await record("fleet-catchup", {
    description: `${clientCount} clients with real inline OPA on one embedded server (server in its own process)`,
    clients: clientCount,
    missedUpdates: missed,
    catchUpFromReconnectMs: summary(fromReconnect),
    allCaughtUpFromNetworkBackMs: summary(fromNetworkBack),
    publishAndWaitMs: summary(waited),
  });
} finally {
  await Promise.all(clients.map((client) => client.stop()));
  await proxy.stop();
  server.kill("SIGTERM");
}

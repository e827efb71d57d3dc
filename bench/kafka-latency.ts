/**
 * End to end through Kafka: PublishDataUpdate on an all-in-one server backed by a real
 * Kafka broker, until applied in OPA by 10 clients (each with a real inline OPA).
 * Reports publish-and-wait (until all 10 applied) and each client's publish-to-ACK time.
 * The server runs in its own process; the clients share this one.
 *
 *   npm run bench:kafka-latency [-- --clients 10 --updates 300]
 */
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { request } from "undici";
import { TriggerService } from "../gen/opal/mesh/v1/trigger_pb.js";
import { startKafka } from "../deploy/kafka/kafka.js";
import { startClient, type RunningClient } from "../test/helpers/mesh.js";
import { freePort, record, runMesh, summary, until } from "./lib.js";

function flag(name: string, fallback: number): number {
  const index = process.argv.indexOf(`--${name}`);
  return index === -1 ? fallback : Number(process.argv[index + 1]);
}
const clientCount = flag("clients", 10);
const updates = flag("updates", 300);

const kafka = await startKafka({ port: await freePort() });
const serverPort = await freePort();
const server = runMesh("server", {
  OPAL_SERVER_BIND_PORT: String(serverPort),
  OPAL_MESH_STREAM_PORT: String(await freePort()),
  OPAL_BROADCAST_URI: `kafka://${kafka.bootstrap}`,
  OPAL_MESH_KAFKA_REPLICATION_FACTOR: "1",
});
const serverUrl = `http://127.0.0.1:${serverPort}`;
const clients: RunningClient[] = [];
try {
  await until(async () => (await request(`${serverUrl}/healthcheck`)).statusCode === 200, "the server", 120_000);
  for (let index = 0; index < clientCount; index++) clients.push(await startClient(serverUrl, { OPAL_CLIENT_STAT_ID: `bench-${index}` }));
  await until(async () => clients.every((client) => client.agent.health.isReady()), "clients ready");
  const trigger = createClient(TriggerService, createConnectTransport({ baseUrl: serverUrl, httpVersion: "1.1" }));
  const waited: number[] = [];
  const perClient: number[] = [];
  for (let index = 0; index < 20 + updates; index++) {
    const started = performance.now();
    const response = await trigger.publishDataUpdate({ entries: [{ dstPath: "/bench/value", topics: ["policy_data"], data: { kind: { case: "numberValue", value: index } } }], wait: true, waitTimeoutMs: 30_000 });
    if (index < 20) continue; // warm-up
    waited.push(performance.now() - started);
    if (response.delivery?.applied !== clientCount) throw new Error(`only ${response.delivery?.applied} of ${clientCount} applied`);
    for (const client of response.delivery.clients) perClient.push(Number(client.latencyMs));
  }
  await record("kafka-latency", {
    description: `trigger -> applied in OPA through Kafka ${"4.1.1"} (single KRaft node on loopback), ${clientCount} clients with real inline OPA, all-in-one server in its own process`,
    clients: clientCount,
    publishAndWaitAllMs: summary(waited),
    publishToAckPerClientMs: summary(perClient),
  });
} finally {
  await Promise.all(clients.map((client) => client.stop()));
  const exited = new Promise((resolve) => server.once("exit", resolve));
  server.kill("SIGTERM");
  await exited;
  await kafka.destroy();
}

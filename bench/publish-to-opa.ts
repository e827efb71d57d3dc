/**
 * Time from PublishDataUpdate (Connect) to the value being readable in OPA, one client,
 * inline data, embedded server. The system under test (server, client, OPA) runs in
 * child processes; this process publishes and polls OPA.
 *
 *   npm run bench:publish-to-opa [-- --updates 200]
 */
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { request } from "undici";
import { TriggerService } from "../gen/opal/mesh/v1/trigger_pb.js";
import { freePort, record, runMesh, summary, until } from "./lib.js";

const flag = process.argv.indexOf("--updates");
const updates = flag === -1 ? 200 : Number(process.argv[flag + 1]);
if (!Number.isInteger(updates) || updates < 1) throw new Error("--updates needs a positive integer");
const warmup = 20;

const [serverPort, streamPort, apiPort, opaPort] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
const server = runMesh("server", { OPAL_SERVER_BIND_PORT: String(serverPort), OPAL_MESH_STREAM_PORT: String(streamPort) });
const client = runMesh("client", {
  OPAL_SERVER_URL: `http://127.0.0.1:${serverPort}`,
  OPAL_CLIENT_API_SERVER_PORT: String(apiPort),
  OPAL_INLINE_OPA_CONFIG: JSON.stringify({ addr: `127.0.0.1:${opaPort}` }),
});
try {
  await until(async () => (await request(`http://127.0.0.1:${apiPort}/ready`)).statusCode === 200, "the client to be ready");
  const trigger = createClient(TriggerService, createConnectTransport({ baseUrl: `http://127.0.0.1:${serverPort}`, httpVersion: "1.1" }));
  const opa = `http://127.0.0.1:${opaPort}/v1/data/bench/value`;
  const samples: number[] = [];
  for (let i = 0; i < warmup + updates; i++) {
    const started = performance.now();
    await trigger.publishDataUpdate({ entries: [{ dstPath: "/bench/value", topics: ["policy_data"], data: { kind: { case: "numberValue", value: i } } }] });
    for (;;) {
      const response = await request(opa);
      const { result } = (await response.body.json()) as { result?: number };
      if (result === i) break;
    }
    if (i >= warmup) samples.push(performance.now() - started);
  }
  await record("publish-to-opa", {
    description: "PublishDataUpdate (Connect, HTTP/1.1) until the value is readable in OPA; 1 client, inline data, embedded server",
    ms: summary(samples),
  });
} finally {
  client.kill("SIGTERM");
  server.kill("SIGTERM");
}

/**
 * A client given several server URLs (OPAL_SERVER_URL with commas) moves its stream to
 * the next one when its server goes away, and takes updates from there.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { type RunningClient, type RunningServer, startClient, startServer, waitForData, waitReady } from "./helpers/mesh.js";
import { call } from "./helpers/auth.js";
import { waitFor } from "./helpers/wait.js";

const NO_SOURCES = { OPAL_DATA_CONFIG_SOURCES: JSON.stringify({ config: { entries: [] } }) };
let first: RunningServer;
let second: RunningServer;
let client: RunningClient;

async function publish(server: RunningServer, value: string): Promise<void> {
  const answer = await call(`${server.url}/data/config`, { method: "POST", body: { entries: [{ url: "", data: value, dst_path: "/failover", topics: ["policy_data"] }] } });
  assert.equal(answer.status, 200, JSON.stringify(answer.json));
}

const connectedTo = async (server: RunningServer): Promise<boolean> => (await server.distributor.listClients({})).clients.some((session) => session.clientId === "moving-client");

before(async () => {
  [first, second] = [await startServer(NO_SOURCES), await startServer(NO_SOURCES)];
  client = await startClient(`${first.url},${second.url}`, { OPAL_CLIENT_STAT_ID: "moving-client" });
  await waitReady(client);
});
after(async () => {
  await client?.stop();
  await first?.stop();
  await second?.stop();
});

test("the stream moves to the next server when the first one stops, and updates come from there", { timeout: 60_000 }, async () => {
  assert.ok(await connectedTo(first), "on the first server at first");
  await publish(first, "from the first");
  await waitForData(client, "/failover", "from the first");

  await first.stop();
  await waitFor(() => connectedTo(second), { timeoutMs: 30_000, message: "the client's stream to reach the second server" });
  await publish(second, "from the second");
  await waitForData(client, "/failover", "from the second");
  assert.equal(client.agent.health.streamConnected, true);
});

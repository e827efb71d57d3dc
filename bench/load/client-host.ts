/**
 * Hosts N real client agents in one process, each with its own real inline OPA: 50
 * clients without 50 Node processes. The clients are the system under test; the bench
 * process talks to this host over IPC only (bench/load/host-ipc.ts).
 *
 *   --server <url> --clients <n> --prefix <client id prefix>
 *
 * Sends "ready" once every client loaded its baseline; answers "positions" (each
 * client's applied position), "applied" (events each applied), "read" (a document from
 * each OPA) and "stop".
 */
import type { Counter } from "prom-client";
import { startClient, type RunningClient } from "../../test/helpers/mesh.js";
import { argument, serve } from "./host-ipc.js";

const serverUrl = argument("server");
const count = Number(argument("clients"));
const prefix = argument("prefix", "bench");
/** The latency budget's hop marks (bench/scenarios/budget.ts): the agents' configuration reads no process environment. */
const hopFile = process.env.OPAL_MESH_HOP_TIMING_FILE;
/** Agents started at once: each spawns an OPA, and 2 cores start a few at a time best. */
const STARTING_AT_ONCE = 5;

const clients: RunningClient[] = [];

async function eventsApplied(client: RunningClient): Promise<number> {
  const counter = client.agent.metrics.registry.getSingleMetric("opal_mesh_client_updates_applied_total") as Counter<"kind"> | undefined;
  const values = (await counter?.get())?.values ?? [];
  return values.find((value) => value.labels.kind === "event")?.value ?? 0;
}

async function waitReady(deadlineMs: number): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  while (!clients.every((client) => client.agent.health.isReady())) {
    if (Date.now() > deadline) throw new Error(`clients not ready: ${clients.filter((client) => !client.agent.health.isReady()).length} of ${clients.length}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

try {
  for (let first = 0; first < count; first += STARTING_AT_ONCE) {
    const batch = Array.from({ length: Math.min(STARTING_AT_ONCE, count - first) }, (_, offset) => startClient(serverUrl, { OPAL_CLIENT_STAT_ID: `${prefix}-${first + offset}`, ...(hopFile === undefined ? {} : { OPAL_MESH_HOP_TIMING_FILE: hopFile }) }));
    clients.push(...(await Promise.all(batch)));
  }
  await waitReady(120_000);
  process.send?.({ type: "ready", clients: clients.map((client) => ({ opaUrl: client.opaUrl })) });
} catch (error) {
  process.send?.({ type: "failed", error: (error as Error).stack ?? String(error) });
  await Promise.all(clients.map((client) => client.stop().catch(() => undefined)));
  process.exit(1);
}

serve(async (request) => {
  switch (request.type) {
    case "positions":
      return { positions: clients.map((client) => client.agent.health.appliedPosition.toString()) };
    case "applied":
      return { applied: await Promise.all(clients.map(eventsApplied)) };
    case "read":
      return { values: await Promise.all(clients.map((client) => client.read(String(request.path)))) };
    case "stop":
      await Promise.all(clients.map((client) => client.stop()));
      return {};
    default:
      throw new Error(`unknown request ${request.type}`);
  }
});
// The bench process gone (killed, crashed): take the clients and their OPAs down too.
process.on("disconnect", () => {
  void Promise.all(clients.map((client) => client.stop().catch(() => undefined))).then(() => process.exit(0));
});

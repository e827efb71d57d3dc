/**
 * 1,000 updates published back to back are applied by every client in log order:
 * the final state equals the last write, and an append-only sequence document proves
 * nothing was reordered, lost or applied twice.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { fromJson } from "@bufbuild/protobuf";
import { type PublishDataUpdateRequest, PublishDataUpdateRequestSchema } from "../gen/opal/mesh/v1/trigger_pb.js";
import { type RunningClient, type RunningServer, startClient, startServer, waitForData, waitReady } from "./helpers/mesh.js";
import { waitFor } from "./helpers/wait.js";

const COUNT = 1_000;

function update(json: unknown): PublishDataUpdateRequest {
  return fromJson(PublishDataUpdateRequestSchema, json as never);
}

let server: RunningServer;
let clients: RunningClient[] = [];

before(async () => {
  server = await startServer();
  clients = await Promise.all([startClient(server.url, { OPAL_CLIENT_STAT_ID: "order-a" }), startClient(server.url, { OPAL_CLIENT_STAT_ID: "order-b" })]);
  await Promise.all(clients.map((client) => waitReady(client)));
});

after(async () => {
  await Promise.all(clients.map((client) => client.stop()));
  await server?.stop();
});

test(`${COUNT} updates back to back are applied in order by every client`, { timeout: 120_000 }, async () => {
  await server.trigger.publishDataUpdate(update({ entries: [{ data: { log: [], last: -1 }, dst_path: "/seq" }] }));
  const positions: bigint[] = [];
  for (let i = 0; i < COUNT; i++) {
    const response = await server.trigger.publishDataUpdate(
      update({
        entries: [
          { data: i, dst_path: "/seq/last" },
          { data: [{ op: "add", path: "/-", value: i }], dst_path: "/seq/log", save_method: "PATCH" },
        ],
      }),
    );
    positions.push(response.position);
  }
  // The log assigned strictly increasing positions in publish order.
  assert.ok(positions.every((position, index) => index === 0 || position === (positions[index - 1] as bigint) + 1n));

  const expected = Array.from({ length: COUNT }, (_, index) => index);
  for (const client of clients) {
    await waitForData(client, "/seq/last", COUNT - 1, 90_000);
    assert.deepEqual(await client.read("/seq/log"), expected, "the sequence document shows every update once, in order");
  }
  // Every client acknowledged up to the last position.
  await waitFor(
    async () => {
      const sessions = (await server.distributor.listClients({})).clients.filter((session) => session.clientId.startsWith("order-"));
      return sessions.length === 2 && sessions.every((session) => session.ackedPosition === positions.at(-1));
    },
    { message: "both clients to acknowledge the last position" },
  );
});

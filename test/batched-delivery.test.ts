/**
 * Batched frames and cumulative ACKs, end to end: a burst of updates published faster
 * than the clients apply them reaches real clients (with real OPAs) in EventBatch
 * messages, and the clients answer with cumulative ACKs. The delivery status of every
 * update must say exactly what one ACK per update would have said: applied by every
 * client, except the updates OPA refused, which each client reported FAILED one by one.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { DeliveryState } from "../gen/opal/mesh/v1/delivery_pb.js";
import { type RunningClient, type RunningServer, startClient, startServer, waitReady } from "./helpers/mesh.js";
import { waitFor } from "./helpers/wait.js";

const UPDATES = 600;
/** Every REFUSED_EVERY-th update is a PATCH removing what does not exist: OPA refuses it. */
const REFUSED_EVERY = 75;

describe("a burst of updates to clients that take batches", () => {
  let server: RunningServer;
  const clients: RunningClient[] = [];
  before(async () => {
    server = await startServer();
    for (const id of ["batched-a", "batched-b"]) clients.push(await startClient(server.url, { OPAL_CLIENT_STAT_ID: id }));
    await Promise.all(clients.map((client) => waitReady(client)));
  });
  after(async () => {
    await Promise.all(clients.map((client) => client.stop()));
    await server?.stop();
  });

  test("every update's delivery status is what per-update ACKs give, refusals included", async () => {
    const refused = (index: number): boolean => index % REFUSED_EVERY === REFUSED_EVERY - 1;
    // All in flight at once: the distributor gets them faster than a client applies them, so they queue and go in batches.
    const published = await Promise.all(
      Array.from({ length: UPDATES }, (_, index) =>
        server.trigger.publishDataUpdate({
          entries: [
            refused(index)
              ? { dstPath: "/burst", topics: ["policy_data"], saveMethod: "PATCH", data: { kind: { case: "listValue", value: { values: [{ kind: { case: "structValue", value: { fields: { op: { kind: { case: "stringValue", value: "remove" } }, path: { kind: { case: "stringValue", value: `/missing-${index}` } } } } } }] } } } }
              : { dstPath: `/burst/k${index}`, topics: ["policy_data"], data: { kind: { case: "numberValue", value: index } } },
          ],
        }),
      ),
    );
    const positions = published.map((answer) => answer.position);
    assert.deepEqual([...positions].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)), positions.toSorted((a, b) => (a < b ? -1 : 1)));
    const statuses = await Promise.all(
      published.map((answer) =>
        waitFor(
          async () => {
            const { status } = await server.trigger.getUpdateStatus({ updateId: answer.id });
            return status?.complete === true ? status : undefined;
          },
          { timeoutMs: 60_000, message: `update ${answer.id} at ${answer.position} to be answered by every client` },
        ),
      ),
    );
    statuses.forEach((status, index) => {
      const expected = refused(index) ? DeliveryState.FAILED : DeliveryState.APPLIED;
      assert.deepEqual(
        status.clients.map((client) => [client.clientId, client.state]),
        [
          ["batched-a", expected],
          ["batched-b", expected],
        ],
        `update ${index}`,
      );
      if (refused(index)) assert.ok(status.clients.every((client) => client.error !== ""), `update ${index}: the refusal says why`);
      assert.equal(status.pending, 0);
    });
    for (const client of clients) {
      const burst = (await client.read("/burst")) as Record<string, number>;
      const expected = Object.fromEntries(Array.from({ length: UPDATES }, (_, index) => index).filter((index) => !refused(index)).map((index) => [`k${index}`, index]));
      assert.deepEqual(burst, expected);
    }
  });
});

import { test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { ClientDeliverySchema, DeliveryState, type UpdateStatus, UpdateStatusSchema } from "../../gen/opal/mesh/v1/delivery_pb.js";
import { mergeStatuses } from "./delivery-status.js";

const { PENDING, APPLIED, FAILED } = DeliveryState;

type ClientRow = [clientId: string, state: DeliveryState, error?: string];

/** One distributor's answer; its own counts are left wrong on purpose (the merge recounts). */
function known(position: bigint, rows: ClientRow[]): UpdateStatus {
  return create(UpdateStatusSchema, {
    updateId: "u1",
    position,
    known: true,
    applied: 99,
    clients: rows.map(([clientId, state, error = ""]) => create(ClientDeliverySchema, { clientId, state, error, latencyMs: 5n })),
  });
}

const unknown = (): UpdateStatus => create(UpdateStatusSchema, { updateId: "u1", known: false });

function rows(status: UpdateStatus): ClientRow[] {
  return status.clients.map((client) => [client.clientId, client.state, client.error]);
}

test("mergeStatuses", async (t) => {
  const cases: Array<{ name: string; statuses: UpdateStatus[]; clients: ClientRow[]; applied: number; failed: number; pending: number; complete: boolean; known: boolean; position: bigint }> = [
    {
      name: "one distributor",
      statuses: [known(3n, [["b", APPLIED], ["a", PENDING]])],
      clients: [["a", PENDING, ""], ["b", APPLIED, ""]],
      applied: 1,
      failed: 0,
      pending: 1,
      complete: false,
      known: true,
      position: 3n,
    },
    {
      name: "distinct clients on two distributors add up",
      statuses: [known(3n, [["a", APPLIED]]), known(3n, [["b", FAILED, "boom"]])],
      clients: [["a", APPLIED, ""], ["b", FAILED, "boom"]],
      applied: 1,
      failed: 1,
      pending: 0,
      complete: true,
      known: true,
      position: 3n,
    },
    {
      name: "a client on two distributors counts once: applied beats pending",
      statuses: [known(3n, [["a", PENDING]]), known(3n, [["a", APPLIED]])],
      clients: [["a", APPLIED, ""]],
      applied: 1,
      failed: 0,
      pending: 0,
      complete: true,
      known: true,
      position: 3n,
    },
    {
      name: "applied beats failed, whichever comes first",
      statuses: [known(3n, [["a", APPLIED]]), known(3n, [["a", FAILED, "old"]])],
      clients: [["a", APPLIED, ""]],
      applied: 1,
      failed: 0,
      pending: 0,
      complete: true,
      known: true,
      position: 3n,
    },
    {
      name: "failed beats pending and keeps its error",
      statuses: [known(3n, [["a", FAILED, "OPA refused it"]]), known(3n, [["a", PENDING]])],
      clients: [["a", FAILED, "OPA refused it"]],
      applied: 0,
      failed: 1,
      pending: 0,
      complete: true,
      known: true,
      position: 3n,
    },
    {
      name: "pending on both stays pending once",
      statuses: [known(3n, [["a", PENDING]]), known(3n, [["a", PENDING]])],
      clients: [["a", PENDING, ""]],
      applied: 0,
      failed: 0,
      pending: 1,
      complete: false,
      known: true,
      position: 3n,
    },
    {
      name: "an unknown answer is ignored, and the highest position wins",
      statuses: [unknown(), known(2n, [["a", APPLIED]]), known(5n, [])],
      clients: [["a", APPLIED, ""]],
      applied: 1,
      failed: 0,
      pending: 0,
      complete: true,
      known: true,
      position: 5n,
    },
    {
      name: "known with no clients is complete",
      statuses: [known(4n, [])],
      clients: [],
      applied: 0,
      failed: 0,
      pending: 0,
      complete: true,
      known: true,
      position: 4n,
    },
    {
      name: "unknown everywhere",
      statuses: [unknown(), unknown()],
      clients: [],
      applied: 0,
      failed: 0,
      pending: 0,
      complete: false,
      known: false,
      position: 0n,
    },
    {
      name: "no distributor answered",
      statuses: [],
      clients: [],
      applied: 0,
      failed: 0,
      pending: 0,
      complete: false,
      known: false,
      position: 0n,
    },
  ];
  for (const { name, statuses, clients, ...expected } of cases) {
    await t.test(name, () => {
      const merged = mergeStatuses("u1", statuses);
      assert.equal(merged.updateId, "u1");
      assert.deepEqual(rows(merged), clients);
      assert.deepEqual(
        { applied: merged.applied, failed: merged.failed, pending: merged.pending, complete: merged.complete, known: merged.known, position: merged.position },
        expected,
      );
    });
  }
});

test("mergeStatuses sorts clients by id", () => {
  const merged = mergeStatuses("u1", [known(1n, [["c", APPLIED], ["a", APPLIED]]), known(1n, [["b", APPLIED]])]);
  assert.deepEqual(
    merged.clients.map((client) => client.clientId),
    ["a", "b", "c"],
  );
});

test("mergeStatuses keeps the trace id and the earliest publication time", () => {
  const a = create(UpdateStatusSchema, { updateId: "u1", known: true, traceId: "", publishedAtUnixMs: 2_000n });
  const b = create(UpdateStatusSchema, { updateId: "u1", known: true, traceId: "0af7651916cd43dd8448eb211c80319c", publishedAtUnixMs: 1_500n });
  const c = create(UpdateStatusSchema, { updateId: "u1", known: true, publishedAtUnixMs: 0n });
  const merged = mergeStatuses("u1", [a, b, c, unknown()]);
  assert.equal(merged.traceId, "0af7651916cd43dd8448eb211c80319c");
  assert.equal(merged.publishedAtUnixMs, 1_500n);
});

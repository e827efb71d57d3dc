import assert from "node:assert/strict";
import { test } from "node:test";
import { clientState, type DeliveryJson, deliveryExitCode } from "./delivery-watch.js";

const delivery = (counts: Partial<DeliveryJson>): DeliveryJson => ({ complete: true, applied: 0, failed: 0, pending: 0, clients: [], ...counts });

test("the exit code of a delivery", async (t) => {
  const cases: Array<[string, DeliveryJson | undefined, number]> = [
    ["all applied", delivery({ applied: 3 }), 0],
    ["no client addressed", delivery({}), 0],
    ["one failed", delivery({ applied: 2, failed: 1 }), 1],
    ["a failure outranks a pending client", delivery({ complete: false, failed: 1, pending: 1 }), 1],
    ["still pending", delivery({ complete: false, applied: 1, pending: 1 }), 2],
    ["never dispatched", undefined, 2],
    ["complete, some OPAL clients cannot confirm: not a failure", delivery({ applied: 2, unconfirmed: 2 }), 0],
    ["an unconfirmed client does not hide a pending one", delivery({ complete: false, pending: 1, unconfirmed: 1 }), 2],
  ];
  for (const [name, input, code] of cases) await t.test(name, () => assert.equal(deliveryExitCode(input), code));
});

test("an OPAL client without update reports is its own state: sent, unconfirmed, never applied or pending", () => {
  assert.equal(clientState({ client_id: "opal:h:1", state: "DELIVERY_STATE_SENT_UNCONFIRMED" }), "UNCONFIRMED");
});

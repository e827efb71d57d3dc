import assert from "node:assert/strict";
import { test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { HelloSchema } from "../../gen/opal/mesh/v1/distributor_pb.js";
import { helloProblem } from "./hello.js";

const withLabels = (labels: Record<string, string>): string | undefined => helloProblem(create(HelloSchema, { clientId: "c", topics: ["policy_data"], labels }), false);

test("a Hello's labels: none, or valid Kubernetes labels, are fine", () => {
  assert.equal(withLabels({}), undefined);
  assert.equal(withLabels({ zone: "eu", canary: "true", "example.com/tier": "gold", empty: "" }), undefined);
  const sixtyFour = Object.fromEntries(Array.from({ length: 64 }, (_, index) => [`k${index}`, "v"]));
  assert.equal(withLabels(sixtyFour), undefined);
  assert.equal(withLabels({ ["k".repeat(63)]: "v".repeat(63) }), undefined);
});

test("a Hello with bad labels is refused, naming the label", () => {
  const sixtyFive = Object.fromEntries(Array.from({ length: 65 }, (_, index) => [`k${index}`, "v"]));
  for (const [labels, expected] of [
    [sixtyFive, /^Hello\.labels: 65 labels, at most 64$/],
    [{ ["k".repeat(64)]: "v" }, /^Hello\.labels: key "k{64}": the name is 64 characters, at most 63$/],
    [{ zone: "v".repeat(64) }, /^Hello\.labels: label "zone": the value is 64 characters, at most 63$/],
    [{ "zo ne": "eu" }, /^Hello\.labels: key "zo ne": the name must be/],
    [{ zone: "eu!" }, /^Hello\.labels: label "zone": the value "eu!" must be/],
    [{ "": "eu" }, /^Hello\.labels: key "": the name is empty$/],
    [{ "Bad_Prefix/zone": "eu" }, /^Hello\.labels: key "Bad_Prefix\/zone": the prefix before "\/" must be a lowercase DNS subdomain/],
  ] as const) {
    assert.match(withLabels(labels) ?? "accepted", expected, JSON.stringify(labels).slice(0, 80));
  }
});

test("labels are checked before the scope", () => {
  assert.match(helloProblem(create(HelloSchema, { scope: "acme", labels: { zone: "e u" } }), false) ?? "", /^Hello\.labels:/);
});

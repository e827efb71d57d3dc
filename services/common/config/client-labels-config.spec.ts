import assert from "node:assert/strict";
import { test } from "node:test";
import { ConfigError } from "./env-reader.js";
import { loadClientConfig } from "./client-config.js";
import { parseLabels } from "./client-labels-config.js";

function problemOf(value: string): string {
  try {
    loadClientConfig({ OPAL_MESH_CLIENT_LABELS: value });
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    return error.message;
  }
  assert.fail(`OPAL_MESH_CLIENT_LABELS=${value} was accepted`);
}

test("unset or empty: no labels", () => {
  assert.deepEqual(loadClientConfig({}).labels, {});
  assert.deepEqual(loadClientConfig({ OPAL_MESH_CLIENT_LABELS: "" }).labels, {});
});

test("comma-separated key=value pairs, spaces around them trimmed, a prefixed key and an empty value allowed", () => {
  assert.deepEqual(loadClientConfig({ OPAL_MESH_CLIENT_LABELS: "zone=eu, canary=true,example.com/tier=gold_1,empty=," }).labels, {
    zone: "eu",
    canary: "true",
    "example.com/tier": "gold_1",
    empty: "",
  });
});

test("a bad pair fails start-up naming the variable and the pair", () => {
  for (const [value, expected] of [
    ["zone", /OPAL_MESH_CLIENT_LABELS: "zone" is not key=value/],
    ["zone=eu,zone=us", /OPAL_MESH_CLIENT_LABELS: "zone=us": key "zone" is given twice/],
    ["=eu", /OPAL_MESH_CLIENT_LABELS: "=eu": key "": the name is empty/],
    ["-zone=eu", /OPAL_MESH_CLIENT_LABELS: "-zone=eu": key "-zone": the name must be/],
    ["zone=e u", /OPAL_MESH_CLIENT_LABELS: "zone=e u": label "zone": the value "e u" must be/],
    ["zone=eu-", /"zone=eu-": label "zone": the value "eu-" must be/],
    [`zone=${"a".repeat(64)}`, /label "zone": the value is 64 characters, at most 63/],
    [`${"k".repeat(64)}=v`, /the name is 64 characters, at most 63/],
    ["Example.COM/tier=gold", /"Example.COM\/tier=gold": key "Example.COM\/tier": the prefix before "\/" must be a lowercase DNS subdomain/],
    ["a/b/c=d", /key "a\/b\/c": the name must be/],
  ] as const) {
    assert.match(problemOf(value), expected, value);
  }
});

test("at most 64 labels; 63-character keys and values are fine", () => {
  const pairs = (n: number): string => Array.from({ length: n }, (_, index) => `k${index}=v`).join(",");
  assert.equal(Object.keys(parseLabels(pairs(64))).length, 64);
  assert.match(problemOf(pairs(65)), /OPAL_MESH_CLIENT_LABELS: 65 labels, at most 64/);
  const long = "a".repeat(63);
  assert.deepEqual(parseLabels(`${long}=${long}`), { [long]: long });
});

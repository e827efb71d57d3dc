import { test } from "node:test";
import assert from "node:assert/strict";
import { canaryBucket, describeSelector, isCanary } from "./canary-selector.js";

test("canaries by labels, or by a stable bucket of the client id", () => {
  const selector = { labels: { canary: "true", zone: "eu" }, percent: 0 };
  assert.equal(isCanary(selector, "a", { canary: "true", zone: "eu", extra: "x" }), true);
  assert.equal(isCanary(selector, "a", { canary: "true" }), false, "every selector label must be there");
  assert.equal(isCanary({ labels: {}, percent: 0 }, "a", { canary: "true" }), false, "an empty selector chooses nobody");
  const ids = Array.from({ length: 2_000 }, (_unused, index) => `client-${index}`);
  const ten = ids.filter((id) => isCanary({ labels: {}, percent: 10 }, id, {}));
  assert.ok(ten.length > 120 && ten.length < 280, `about 10% of 2000: ${ten.length}`);
  const twenty = new Set(ids.filter((id) => isCanary({ labels: {}, percent: 20 }, id, {})));
  assert.ok(ten.every((id) => twenty.has(id)), "a larger share keeps every canary of a smaller one");
  assert.equal(canaryBucket("client-7"), canaryBucket("client-7"));
  assert.equal(describeSelector({ labels: { canary: "true" }, percent: 10 }), "canary=true or 10% of clients");
});

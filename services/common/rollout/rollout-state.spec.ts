import { test } from "node:test";
import assert from "node:assert/strict";
import { type CanaryView, Rollout } from "./rollout-state.js";

const plan = { id: "r1", scope: "default", candidate: "c2", stable: "c1", selector: { labels: { canary: "true" }, percent: 0 }, soakMs: 1_000 };
const canary = (clientId: string, delivery: CanaryView["delivery"], healthy?: boolean, message?: string): CanaryView => ({ clientId, delivery, healthy, ...(message === undefined ? {} : { message }) });

test("every canary applied, healthy through the soak: promoted once", () => {
  const rollout = new Rollout(plan);
  assert.deepEqual(rollout.observe([canary("a", "applied", true), canary("b", "pending")], 0), { action: "none" });
  assert.equal(rollout.stage, "canary");
  assert.match(rollout.status().message, /waiting for 1 of 2 canaries/);
  assert.deepEqual(rollout.observe([canary("a", "applied", true), canary("b", "applied", undefined)], 100), { action: "none" });
  assert.equal(rollout.stage, "soaking");
  assert.equal(rollout.status().soakingSinceMs, 100);
  assert.deepEqual(rollout.observe([canary("a", "applied", true), canary("b", "applied", true)], 1_099), { action: "none" });
  const decision = rollout.observe([canary("a", "applied", true), canary("b", "applied", true)], 1_100);
  assert.deepEqual(decision, { action: "promote", reason: "every canary (2) applied c2 and stayed healthy for 1 s" });
  assert.equal(rollout.stage, "promoted");
  assert.deepEqual(rollout.observe([canary("a", "failed")], 2_000), { action: "none" }, "decided once");
});

test("a canary's NACK or an unhealthy canary rolls back, naming it; a pause holds promotion but not that", () => {
  const refused = new Rollout(plan);
  assert.deepEqual(refused.observe([canary("a", "applied", true), canary("b", "failed", undefined, "rego_parse_error")], 0), { action: "rollback", reason: "canary b refused c2: rego_parse_error" });
  assert.equal(refused.stage, "rolled_back");

  const sick = new Rollout(plan);
  sick.observe([canary("a", "applied", true)], 0);
  assert.deepEqual(sick.observe([canary("a", "applied", false, "OPA does not answer")], 500), { action: "rollback", reason: "canary a is unhealthy after applying c2: OPA does not answer" });

  const paused = new Rollout(plan);
  paused.observe([canary("a", "applied", true)], 0);
  paused.pause();
  assert.deepEqual(paused.observe([canary("a", "applied", true)], 10_000), { action: "none" }, "no promotion while paused");
  assert.equal(paused.stage, "paused");
  paused.resume();
  assert.equal(paused.stage, "soaking");
  assert.equal(paused.observe([canary("a", "applied", true)], 10_000).action, "promote", "the soak went on meanwhile");
  const pausedThenRefused = new Rollout(plan);
  pausedThenRefused.pause();
  assert.equal(pausedThenRefused.observe([canary("a", "failed")], 0).action, "rollback");
});

test("a canary joining during the soak restarts it; no canary at all waits; by hand ends it at once", () => {
  const rollout = new Rollout(plan);
  rollout.observe([canary("a", "applied", true)], 0);
  rollout.observe([canary("a", "applied", true), canary("late", "pending")], 900);
  assert.equal(rollout.stage, "canary");
  rollout.observe([canary("a", "applied", true), canary("late", "applied", true)], 1_000);
  assert.equal(rollout.observe([canary("a", "applied", true), canary("late", "applied", true)], 1_500).action, "none", "soaking again from 1000");
  assert.equal(rollout.observe([canary("a", "applied", true), canary("late", "applied", true)], 2_000).action, "promote");

  const lonely = new Rollout(plan);
  assert.equal(lonely.observe([], 60_000).action, "none");
  assert.match(lonely.status().message, /no canary is connected/);
  assert.deepEqual(lonely.promote("operator"), { action: "promote", reason: "promoted by hand (operator)" });
  assert.deepEqual(lonely.rollback("operator"), { action: "none" }, "ended already");
  assert.equal(new Rollout(plan).rollback("cli").action, "rollback");
});

import { test } from "node:test";
import assert from "node:assert/strict";
import { Registry } from "../common/telemetry/metrics.js";
import { PolicyWatcherMetrics } from "./metrics.js";
import type { PolicySource } from "./types.js";

test("checks of the source are counted, failed ones too", async () => {
  const registry = new Registry();
  let reachable = true;
  const source: PolicySource = {
    description: "test source",
    start: async () => undefined,
    check: async () => (reachable ? "abc" : Promise.reject(new Error("unreachable"))),
    tree: async () => new Map(),
    changes: async () => undefined,
    stop: async () => undefined,
  };
  const measured = new PolicyWatcherMetrics(registry).source(source);
  const signal = new AbortController().signal;
  assert.equal(await measured.check(signal), "abc");
  reachable = false;
  await assert.rejects(measured.check(signal), /unreachable/);
  const text = await registry.metrics();
  assert.match(text, /opal_mesh_policy_watcher_checks_total 2/);
  assert.match(text, /opal_mesh_policy_watcher_check_failures_total 1/);
});

test("builds follow the watcher's counts, and only the current version has an info series", async () => {
  const registry = new Registry();
  const watcher = { builds: 0, deltaBuilds: 0, hash: "" };
  new PolicyWatcherMetrics(registry).watch(watcher);
  assert.doesNotMatch(await registry.metrics(), /opal_mesh_policy_watcher_policy_info\{/);
  Object.assign(watcher, { builds: 3, deltaBuilds: 1, hash: "aaa" });
  let text = await registry.metrics();
  assert.match(text, /opal_mesh_policy_watcher_bundle_builds_total\{kind="full"\} 2/);
  assert.match(text, /opal_mesh_policy_watcher_bundle_builds_total\{kind="delta"\} 1/);
  assert.match(text, /opal_mesh_policy_watcher_policy_info\{hash="aaa"\} 1/);
  Object.assign(watcher, { builds: 5, deltaBuilds: 3, hash: "bbb" });
  text = await registry.metrics();
  assert.match(text, /opal_mesh_policy_watcher_bundle_builds_total\{kind="full"\} 2/);
  assert.match(text, /opal_mesh_policy_watcher_bundle_builds_total\{kind="delta"\} 3/);
  assert.match(text, /opal_mesh_policy_watcher_policy_info\{hash="bbb"\} 1/);
  assert.doesNotMatch(text, /hash="aaa"/);
});

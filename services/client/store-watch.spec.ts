/**
 * The liveness probe's reading of OPA's answers, table-driven over a store double: only
 * "the status document is missing" is a lost OPA; a refused read (401/403) and an outage
 * are shown in health as what they are, and never start a reload.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { silentLogger } from "../common/logger.js";
import type { UpdatePipeline } from "./data/update-pipeline.js";
import { ClientHealth } from "./health.js";
import { type PolicyStore, PolicyStoreError } from "./policy-store.js";
import { LivenessProbe } from "./store-watch.js";

function store(healthy: boolean, exists: () => Promise<boolean>): PolicyStore {
  return {
    name: "double",
    isHealthy: () => Promise.resolve(healthy),
    exists,
    writeData: () => Promise.resolve(),
    readData: () => Promise.resolve(undefined),
    patch: () => Promise.resolve(),
    putPolicy: () => Promise.resolve(),
    deletePolicy: () => Promise.resolve(),
    listPolicies: () => Promise.resolve([]),
    close: () => Promise.resolve(),
  };
}

const idle = { pending: 0 } as UpdatePipeline;

test("what the liveness probe makes of OPA's answers", async (t) => {
  const cases: Array<{ name: string; healthy: boolean; exists: () => Promise<boolean>; lost: boolean; reachable: boolean; problem: RegExp | undefined }> = [
    { name: "the status is there", healthy: true, exists: () => Promise.resolve(true), lost: false, reachable: true, problem: undefined },
    { name: "the status is missing: OPA lost its state", healthy: true, exists: () => Promise.resolve(false), lost: true, reachable: true, problem: undefined },
    { name: "OPA refuses the read (401)", healthy: true, exists: () => Promise.reject(new PolicyStoreError("OPA refused query /system/opal: 401 unauthorized", 401)), lost: false, reachable: true, problem: /credentials.*401/ },
    { name: "OPA forbids the read (403)", healthy: true, exists: () => Promise.reject(new PolicyStoreError("OPA refused query /system/opal: 403 forbidden", 403)), lost: false, reachable: true, problem: /credentials.*403/ },
    { name: "OPA went away between the two requests", healthy: true, exists: () => Promise.reject(new PolicyStoreError("OPA at http://x is unreachable: ECONNREFUSED", undefined)), lost: false, reachable: false, problem: undefined },
    { name: "OPA fails the read (500)", healthy: true, exists: () => Promise.reject(new PolicyStoreError("OPA refused query /system/opal: 500 boom", 500)), lost: false, reachable: false, problem: undefined },
    { name: "OPA does not answer", healthy: false, exists: () => Promise.resolve(false), lost: false, reachable: false, problem: undefined },
  ];
  for (const given of cases) {
    await t.test(given.name, async () => {
      const health = new ClientHealth(true, false);
      let lost = 0;
      const probe = new LivenessProbe({ store: store(given.healthy, given.exists), health, written: () => true, pipeline: idle, intervalMs: 60_000, logger: silentLogger(), onLost: () => lost++ });
      await probe.probe();
      assert.equal(lost > 0, given.lost, "lost");
      assert.equal(health.engineReachable, given.reachable, "reachable");
      if (given.problem === undefined) assert.equal(health.engineProblem, undefined);
      else {
        assert.match(health.engineProblem ?? "", given.problem);
        assert.equal(health.isHealthy(), false, "not healthy while OPA refuses us");
        assert.equal(health.storeState.held, true, "a refusal is not a loss");
        assert.match(health.message() ?? "", given.problem);
      }
      await probe.stop();
    });
  }
});

test("a problem clears once OPA answers again", async () => {
  const health = new ClientHealth(true, false);
  let refuse = true;
  const probe = new LivenessProbe({
    store: store(true, () => (refuse ? Promise.reject(new PolicyStoreError("OPA refused query: 401", 401)) : Promise.resolve(true))),
    health,
    written: () => true,
    pipeline: idle,
    intervalMs: 60_000,
    logger: silentLogger(),
    onLost: () => assert.fail("not a loss"),
  });
  await probe.probe();
  assert.notEqual(health.engineProblem, undefined);
  refuse = false;
  await probe.probe();
  assert.equal(health.engineProblem, undefined);
  assert.equal(health.isHealthy(), true);
  await probe.stop();
});

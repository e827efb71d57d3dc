import { test } from "node:test";
import assert from "node:assert/strict";
import { RolloutStage } from "../../../gen/opal/mesh/v1/event_pb.js";
import { createLogger } from "../../common/logger.js";
import type { PolicyChange } from "../watcher.js";
import { RolloutGate, type RolloutStep } from "./rollout-gate.js";

function gate(): { gate: RolloutGate; published: Array<{ hash: string; stage: RolloutStage | undefined }>; failNext: { count: number } } {
  const published: Array<{ hash: string; stage: RolloutStage | undefined }> = [];
  const failNext = { count: 0 };
  const publish = (change: PolicyChange, rollout?: RolloutStep): Promise<bigint | undefined> => {
    if (failNext.count > 0) {
      failNext.count--;
      return Promise.reject(new Error("the log is away"));
    }
    published.push({ hash: change.hash, stage: rollout?.stage });
    return Promise.resolve(BigInt(published.length));
  };
  return { gate: new RolloutGate({ selector: { labels: { canary: "true" }, percent: 0 }, soakMs: 0 }, publish, createLogger({ level: "silent", format: "json" })), published, failNext };
}

test("the first version goes to everyone, later ones as a canary stage; the default is the stable one meanwhile", async () => {
  const { gate: g, published } = gate();
  await g.publish({ hash: "v1", oldHash: "", dirs: ["."] });
  assert.equal(g.defaultVersion(), "");
  await g.publish({ hash: "v2", oldHash: "v1", dirs: ["."] });
  assert.deepEqual(published, [{ hash: "v1", stage: undefined }, { hash: "v2", stage: RolloutStage.CANARY }]);
  assert.equal(g.canaryPosition, 2n);
  assert.equal(g.defaultVersion(), "v1");
  await g.rollback("spec");
  assert.deepEqual(published.at(-1), { hash: "v1", stage: RolloutStage.ROLLED_BACK });
  assert.equal(g.status().rejected, "v2");
  assert.equal(await g.publish({ hash: "v2", oldHash: "v2", dirs: ["."] }), true, "the rejected version is not offered again");
  assert.equal(published.length, 3);
});

test("a decided step the log could not take is kept and published on the retry; the default stays stable meanwhile", async () => {
  const { gate: g, published, failNext } = gate();
  await g.publish({ hash: "v1", oldHash: "", dirs: ["."] });
  await g.publish({ hash: "v2", oldHash: "v1", dirs: ["."] });
  failNext.count = 1;
  await assert.rejects(g.promote("spec"), /the log is away/);
  assert.equal(g.underWay, undefined, "decided");
  assert.equal(g.defaultVersion(), "v1", "not on the log yet: the stable version is still the default");
  await g.retryUnpublished();
  assert.deepEqual(published.at(-1), { hash: "v2", stage: RolloutStage.PROMOTED });
  assert.equal(g.status().stable, "v2");
  assert.equal(g.defaultVersion(), "");
  await g.retryUnpublished();
  assert.equal(published.length, 3, "published once");
});

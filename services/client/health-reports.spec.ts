import { test } from "node:test";
import assert from "node:assert/strict";
import { ClientHealth } from "./health.js";
import { type ClientReportFields, healthReport, HealthReports } from "./health-reports.js";

function loaded(): ClientHealth {
  const health = new ClientHealth(true, true);
  health.policyLoaded = true;
  health.baselineLoaded = true;
  health.policyHash = "abc";
  health.appliedPosition = 7n;
  return health;
}

test("healthReport(): the health in the report's terms, and why it is not fine", async (t) => {
  const cases: Array<[string, (health: ClientHealth) => void, Partial<ClientReportFields>]> = [
    ["healthy and ready", () => undefined, { healthy: true, ready: true, opaReachable: true, policyHash: "abc", appliedPosition: 7n, message: "" }],
    ["OPA does not answer", (health) => (health.engineReachable = false), { healthy: false, opaReachable: false, message: "the policy store (OPA) does not answer" }],
    [
      "a data update failed",
      (health) => health.recordData({ ok: false, kind: "event", id: "u1", error: "source answered 500" }),
      { healthy: false, ready: true, message: "data update failed: source answered 500" },
    ],
    ["the policy failed", (health) => health.recordPolicy({ ok: false, kind: "policy", id: "abc", error: "rego_parse_error" }), { healthy: false, message: "policy failed: rego_parse_error" }],
    ["the baseline failed", (health) => health.recordData({ ok: false, kind: "baseline", id: "", error: "timeout" }), { message: "baseline data failed: timeout" }],
    ["a later success clears it", (health) => (health.recordData({ ok: false, kind: "event", id: "u1", error: "x" }), health.recordData({ ok: true, kind: "event", id: "u2" })), { healthy: true, message: "" }],
    ["loading the policy", (health) => (health.policyLoaded = false), { healthy: true, ready: false, message: "loading the policy" }],
    ["loading the data", (health) => (health.baselineLoaded = false), { ready: false, message: "loading the baseline data" }],
    [
      "OPA lost its state: nothing claimed, not even the position",
      (health) => (health.storeState.eventWrote(["/a"]), health.storeState.lose("the inline OPA restarted")),
      { healthy: false, ready: false, appliedPosition: 0n },
    ],
    [
      "the backup fails: not healthy, still ready, the path named",
      (health) => (health.backup = { path: "/var/opal/opa.json", ok: false, failures: 1, lastError: "ENOSPC: no space left on device" }),
      { healthy: false, ready: true, appliedPosition: 7n, message: "the store backup to /var/opal/opa.json failed: ENOSPC: no space left on device" },
    ],
  ];
  for (const [name, change, expected] of cases) {
    await t.test(name, () => {
      const health = loaded();
      change(health);
      const report = healthReport(health);
      for (const [key, value] of Object.entries(expected)) assert.deepEqual(report[key as keyof ClientReportFields], value, key);
    });
  }
});

/** A schedule on a hand-driven clock; `check()` is what the timer would call. */
function schedule(minIntervalMs = 500, refreshMs = 10_000) {
  let now = 1_000_000;
  let current: ClientReportFields = healthReport(loaded());
  const sent: ClientReportFields[] = [];
  const reports = new HealthReports({ snapshot: () => current, send: (report) => sent.push(report), minIntervalMs, refreshMs, now: () => now });
  return {
    reports,
    sent,
    advance: (ms: number) => void (now += ms),
    change: (fields: Partial<ClientReportFields>) => void (current = { ...current, ...fields }),
  };
}

test("HealthReports sends after Welcome, on changes at most every 500 ms, and every 10 s", () => {
  const s = schedule();
  s.reports.sendNow();
  assert.equal(s.sent.length, 1, "after Welcome");
  s.advance(250);
  s.reports.check();
  assert.equal(s.sent.length, 1, "nothing changed");
  s.change({ healthy: false, message: "down" });
  s.reports.check();
  assert.equal(s.sent.length, 1, "changed, but the last report is only 250 ms old");
  s.advance(250);
  s.reports.check();
  assert.equal(s.sent.length, 2, "sent once 500 ms passed");
  assert.equal(s.sent[1]?.message, "down");
  s.change({ appliedPosition: 8n });
  s.advance(100);
  s.reports.check();
  s.change({ appliedPosition: 9n });
  s.advance(400);
  s.reports.check();
  assert.equal(s.sent.length, 3, "two changes within 500 ms make one report");
  assert.equal(s.sent[2]?.appliedPosition, 9n, "with the latest state");
  s.advance(9_999);
  s.reports.check();
  assert.equal(s.sent.length, 3);
  s.advance(1);
  s.reports.check();
  assert.equal(s.sent.length, 4, "refreshed after 10 s unchanged");
});

test("HealthReports.sendNow() always sends (a new session knows nothing yet)", () => {
  const s = schedule();
  s.reports.sendNow();
  s.reports.sendNow();
  assert.equal(s.sent.length, 2);
});

test("health report: /healthy's status and message say what is wrong", async (t) => {
  await t.test("lost state is unavailable, with the reason and what is not held", () => {
    const health = loaded();
    health.storeState.eventWrote(["/truth/k1"]);
    health.storeState.lose("the inline OPA restarted");
    health.storeState.baselineWrote([], 9n);
    const report = health.report();
    assert.equal(report.status, "unavailable");
    assert.equal(report.ready, false);
    assert.equal(report.data.appliedPositionHeld, false);
    assert.match(report.message ?? "", /OPA lost its state at .* \(the inline OPA restarted\); holds the baseline only \(rebuilt from position 9/);
    assert.deepEqual(report.state.notHeld, ["/truth/k1"]);
  });
  await t.test("a failing backup is degraded: OPA's data is fine, offline mode is not", () => {
    const health = loaded();
    health.backup = { path: "/b/opa.json", ok: false, failures: 2, lastError: "EROFS: read-only file system" };
    const report = health.report();
    assert.equal(report.status, "degraded");
    assert.equal(health.isHealthy(), false);
    assert.equal(health.isServing(), true);
    assert.equal(report.backup?.failures, 2);
  });
  await t.test("all well: ok, no message", () => {
    const report = loaded().report();
    assert.equal(report.status, "ok");
    assert.equal(report.message, undefined);
    assert.deepEqual(report.state, { held: true });
  });
});

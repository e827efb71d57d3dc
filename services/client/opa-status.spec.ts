import { test } from "node:test";
import assert from "node:assert/strict";
import { ClientHealth, type Transaction } from "./health.js";
import { type PositionMark, readStatus, type StatusSnapshot, StatusDocument } from "./opa-status.js";

interface Rendered {
  ready: boolean;
  healthy: boolean;
  client_id: string;
  log_id: string;
  position: number | null;
  baseline_loaded: boolean;
  policy: { hash: string; root_data_keys: string[] };
  last_data_transaction: Transaction | null;
  last_policy_transaction: Transaction | null;
  updated_at: string;
}

function parse(bytes: Uint8Array): Rendered {
  return JSON.parse(Buffer.from(bytes).toString("utf8")) as Rendered;
}

const EMPTY: StatusSnapshot = { mark: undefined, policyHash: "", rootDataKeys: [], baselineLoaded: false, ready: false };

test("readStatus", async (t) => {
  const cases: Array<[string, unknown, StatusSnapshot | undefined]> = [
    [
      "a complete document",
      { ready: true, healthy: true, log_id: "log-1", position: 42, baseline_loaded: true, policy: { hash: "abc", root_data_keys: ["users", "roles"] } },
      { mark: { logId: "log-1", position: 42n }, policyHash: "abc", rootDataKeys: ["users", "roles"], baselineLoaded: true, ready: true },
    ],
    ["position zero is a mark", { log_id: "log-1", position: 0 }, { ...EMPTY, mark: { logId: "log-1", position: 0n } }],
    ["a null position is no mark", { log_id: "log-1", position: null }, EMPTY],
    ["an empty log id is no mark", { log_id: "", position: 3 }, EMPTY],
    ["a missing log id is no mark", { position: 3 }, EMPTY],
    ["a position given as a string is no mark", { log_id: "log-1", position: "3" }, EMPTY],
    ["a fractional position is no mark", { log_id: "log-1", position: 1.5 }, EMPTY],
    ["a position past 2^53 is no mark", { log_id: "log-1", position: 2 ** 53 }, EMPTY],
    ["non-string root data keys are dropped", { policy: { hash: "h", root_data_keys: ["a", 1, null, "b"] } }, { ...EMPTY, policyHash: "h", rootDataKeys: ["a", "b"] }],
    ["root data keys that are not a list", { policy: { root_data_keys: "a" } }, EMPTY],
    ["a policy hash that is not a string", { policy: { hash: 7 } }, EMPTY],
    ["a null policy", { policy: null }, EMPTY],
    ["flags must be true, not truthy", { ready: "true", baseline_loaded: 1 }, EMPTY],
    ["an empty object", {}, EMPTY],
    ["null", null, undefined],
    ["undefined (nothing in OPA)", undefined, undefined],
    ["a string", "ready", undefined],
    ["a number", 42, undefined],
    ["a boolean", true, undefined],
  ];
  for (const [name, document, expected] of cases) {
    await t.test(name, () => assert.deepEqual(readStatus(document), expected));
  }
});

function health({ data = true, policy = true, policyLoaded = false, baselineLoaded = false } = {}): ClientHealth {
  const result = new ClientHealth(data, policy);
  result.policyLoaded = policyLoaded;
  result.baselineLoaded = baselineLoaded;
  return result;
}

function transaction(ok: boolean, id = "t1"): Transaction {
  return { ok, kind: "event", id, at: "2024-01-01T00:00:00.000Z", ...(ok ? {} : { error: "boom" }) };
}

test("render() without a mark has no position", () => {
  const rendered = parse(new StatusDocument(health(), "client-1").render());
  assert.equal(rendered.position, null);
  assert.equal(rendered.log_id, "");
  assert.equal(rendered.client_id, "client-1");
  assert.deepEqual(rendered.policy, { hash: "", root_data_keys: [] });
  assert.equal(rendered.last_data_transaction, null);
  assert.equal(rendered.last_policy_transaction, null);
  assert.ok(!Number.isNaN(Date.parse(rendered.updated_at)), rendered.updated_at);
});

test("render() writes the mark it is given, else its own", async (t) => {
  const own: PositionMark = { logId: "log-1", position: 5n };
  const given: PositionMark = { logId: "log-2", position: 9n };
  const cases: Array<[string, PositionMark | undefined, PositionMark | undefined, [string, number | null]]> = [
    ["its own mark", own, undefined, ["log-1", 5]],
    ["a given mark wins", own, given, ["log-2", 9]],
    ["a given mark without one of its own", undefined, given, ["log-2", 9]],
    ["neither", undefined, undefined, ["", null]],
  ];
  for (const [name, mark, argument, expected] of cases) {
    await t.test(name, () => {
      const status = new StatusDocument(health(), "c");
      status.committed(mark);
      const rendered = parse(status.render(argument));
      assert.deepEqual([rendered.log_id, rendered.position], expected);
      assert.equal(status.mark, mark, "render does not move the mark");
    });
  }
});

test("render() computes ready from the client's health", async (t) => {
  const cases: Array<{ name: string; data: boolean; policy: boolean; policyLoaded: boolean; baselineLoaded: boolean; override?: boolean; ready: boolean; baseline: boolean }> = [
    { name: "nothing loaded", data: true, policy: true, policyLoaded: false, baselineLoaded: false, ready: false, baseline: false },
    { name: "only the policy loaded", data: true, policy: true, policyLoaded: true, baselineLoaded: false, ready: false, baseline: false },
    { name: "only the baseline loaded", data: true, policy: true, policyLoaded: false, baselineLoaded: true, ready: false, baseline: true },
    { name: "both loaded", data: true, policy: true, policyLoaded: true, baselineLoaded: true, ready: true, baseline: true },
    { name: "data disabled needs only the policy", data: false, policy: true, policyLoaded: true, baselineLoaded: false, ready: true, baseline: false },
    { name: "policy disabled needs only the baseline", data: true, policy: false, policyLoaded: false, baselineLoaded: true, ready: true, baseline: true },
    { name: "the baseline override loads it", data: true, policy: true, policyLoaded: true, baselineLoaded: false, override: true, ready: true, baseline: true },
    { name: "the baseline override unloads it", data: true, policy: true, policyLoaded: true, baselineLoaded: true, override: false, ready: false, baseline: false },
  ];
  for (const { name, data, policy, policyLoaded, baselineLoaded, override, ready, baseline } of cases) {
    await t.test(name, () => {
      const status = new StatusDocument(health({ data, policy, policyLoaded, baselineLoaded }), "c");
      const rendered = parse(status.render(undefined, undefined, override));
      assert.equal(rendered.ready, ready);
      assert.equal(rendered.baseline_loaded, baseline);
    });
  }
});

test("render() computes healthy from the engine and the last transactions", async (t) => {
  const cases: Array<{ name: string; reachable: boolean; lastData?: Transaction; lastPolicy?: Transaction; given?: Transaction; healthy: boolean; lastDataWritten: Transaction | null }> = [
    { name: "nothing happened yet", reachable: true, healthy: true, lastDataWritten: null },
    { name: "the engine is unreachable", reachable: false, healthy: false, lastDataWritten: null },
    { name: "the last data transaction failed", reachable: true, lastData: transaction(false), healthy: false, lastDataWritten: transaction(false) },
    { name: "the last data transaction succeeded", reachable: true, lastData: transaction(true), healthy: true, lastDataWritten: transaction(true) },
    { name: "the given transaction counts as the last one (failed)", reachable: true, lastData: transaction(true), given: transaction(false, "t2"), healthy: false, lastDataWritten: transaction(false, "t2") },
    { name: "the given transaction counts as the last one (ok)", reachable: true, lastData: transaction(false), given: transaction(true, "t2"), healthy: true, lastDataWritten: transaction(true, "t2") },
    { name: "the last policy transaction failed", reachable: true, lastPolicy: transaction(false, "p1"), given: transaction(true, "t2"), healthy: false, lastDataWritten: transaction(true, "t2") },
    { name: "the last policy transaction succeeded", reachable: true, lastPolicy: transaction(true, "p1"), healthy: true, lastDataWritten: null },
  ];
  for (const { name, reachable, lastData, lastPolicy, given, healthy, lastDataWritten } of cases) {
    await t.test(name, () => {
      const clientHealth = health();
      clientHealth.engineReachable = reachable;
      if (lastData !== undefined) clientHealth.recordData(lastData);
      if (lastPolicy !== undefined) clientHealth.recordPolicy(lastPolicy);
      const rendered = parse(new StatusDocument(clientHealth, "c").render(undefined, given));
      assert.equal(rendered.healthy, healthy);
      // ClientHealth stamps its own `at`: compare the rest.
      const withoutAt = (value: Transaction | null) => (value === null ? null : { ...value, at: "" });
      assert.deepEqual(withoutAt(rendered.last_data_transaction), withoutAt(lastDataWritten));
      assert.deepEqual(withoutAt(rendered.last_policy_transaction), withoutAt(lastPolicy ?? null));
    });
  }
});

test("render() writes the policy hash and root data keys", () => {
  const status = new StatusDocument(health(), "c");
  status.policyApplied("abc", ["users"]);
  assert.deepEqual(parse(status.render()).policy, { hash: "abc", root_data_keys: ["users"] });
});

test("restore() and forget()", async (t) => {
  const snapshot: StatusSnapshot = { mark: { logId: "log-1", position: 7n }, policyHash: "abc", rootDataKeys: ["users"], baselineLoaded: true, ready: true };

  await t.test("a new document is not written", () => {
    const status = new StatusDocument(health(), "c");
    assert.deepEqual([status.written, status.mark, status.policyHash, status.rootDataKeys], [false, undefined, "", []]);
  });

  await t.test("restore() takes the snapshot and marks it written", () => {
    const status = new StatusDocument(health(), "c");
    status.restore(snapshot);
    assert.deepEqual([status.written, status.mark, status.policyHash, status.rootDataKeys], [true, snapshot.mark, "abc", ["users"]]);
    const rendered = parse(status.render());
    assert.deepEqual([rendered.log_id, rendered.position, rendered.policy], ["log-1", 7, { hash: "abc", root_data_keys: ["users"] }]);
  });

  await t.test("restore() of a snapshot without a mark clears the mark", () => {
    const status = new StatusDocument(health(), "c");
    status.committed({ logId: "old", position: 1n });
    status.restore(EMPTY);
    assert.deepEqual([status.written, status.mark], [true, undefined]);
  });

  await t.test("forget() returns to a new document", () => {
    const status = new StatusDocument(health(), "c");
    status.restore(snapshot);
    status.forget();
    assert.deepEqual([status.written, status.mark, status.policyHash, status.rootDataKeys], [false, undefined, "", []]);
    assert.equal(parse(status.render()).position, null);
  });
});

test("a rendered document reads back as what was rendered", () => {
  const status = new StatusDocument(health({ policyLoaded: true, baselineLoaded: true }), "c");
  status.committed({ logId: "log-1", position: 12n });
  status.policyApplied("abc", ["a", "b"]);
  const snapshot = readStatus(parse(status.render()));
  assert.deepEqual(snapshot, { mark: { logId: "log-1", position: 12n }, policyHash: "abc", rootDataKeys: ["a", "b"], baselineLoaded: true, ready: true });
});

test("the status document claims nothing while OPA does not hold the client's state", () => {
  const h = health({ policyLoaded: true, baselineLoaded: true });
  h.storeState.eventWrote(["/truth/k1"]);
  h.storeState.lose("the inline OPA restarted");
  const document = new StatusDocument(h, "client-1");
  const rendered = JSON.parse(Buffer.from(document.render({ logId: "log-1", position: 5n })).toString("utf8")) as Rendered & { state: Record<string, unknown> };
  assert.equal(rendered.ready, false);
  assert.equal(rendered.healthy, false);
  assert.equal(rendered.state.held, false);
  assert.deepEqual(rendered.state.not_held, ["/truth/k1"]);
  // A later run reading it carries the loss on.
  const snapshot = readStatus(rendered);
  assert.deepEqual(snapshot?.lost, { at: h.storeState.lostAt, reason: "the inline OPA restarted", notHeld: ["/truth/k1"], complete: true });
  h.storeState.restored();
  const back = JSON.parse(Buffer.from(document.render()).toString("utf8")) as Rendered & { state: Record<string, unknown> };
  assert.equal(back.ready, true);
  assert.deepEqual(back.state, { held: true });
  assert.equal(readStatus(back)?.lost, undefined);
});

import { test } from "node:test";
import assert from "node:assert/strict";
import { covers, StoreState } from "./store-state.js";

const AT = new Date("2026-01-02T03:04:05.000Z");

function state(): StoreState {
  return new StoreState(() => AT);
}

test("covers", async (t) => {
  const cases: Array<[string, string, boolean]> = [
    ["/", "/a/b", true],
    ["/a", "/a", true],
    ["/a", "/a/b", true],
    ["/a", "/ab", false],
    ["/a/b", "/a", false],
  ];
  for (const [prefix, path, expected] of cases) await t.test(`${prefix} covers ${path}: ${expected}`, () => assert.equal(covers(prefix, path), expected));
});

test("StoreState: a loss is held again only once a reload rewrote every path events wrote", async (t) => {
  type Step = (s: StoreState) => void;
  const cases: Array<[string, Step[], boolean, RegExp | undefined]> = [
    ["never lost", [(s) => s.eventWrote(["/a"])], true, undefined],
    ["lost, not reloaded yet", [(s) => s.eventWrote(["/a"]), (s) => s.lose("the inline OPA restarted")], false, /OPA lost its state at 2026-01-02T03:04:05.000Z \(the inline OPA restarted\); reloading policy and data/],
    [
      "lost, the baseline covers what events wrote",
      [(s) => s.eventWrote(["/check/items/1", "check/last"]), (s) => s.lose("x"), (s) => s.baselineWrote(["/check"], 7n), (s) => void s.settle(true, true)],
      true,
      undefined,
    ],
    [
      "lost, the baseline does not cover an event's path",
      [(s) => s.eventWrote(["/truth/k1", "/check/last"]), (s) => s.lose("x"), (s) => s.baselineWrote(["/check"], 7n), (s) => void s.settle(true, true)],
      false,
      /holds the baseline only \(rebuilt from position 7, and the updates after it\): 1 path\(s\) written by earlier updates are not held \(\/truth\/k1\)/,
    ],
    ["lost with nothing written by events: held once loaded", [(s) => s.lose("x"), (s) => s.baselineWrote([], 3n), (s) => void s.settle(true, true)], true, undefined],
    ["lost, reloaded, but the policy is not loaded yet", [(s) => s.lose("x"), (s) => s.baselineWrote([], 3n), (s) => void s.settle(false, true)], false, /waiting for the policy/],
    ["a periodic refetch alone is not a reload", [(s) => s.lose("x"), (s) => s.baselineWrote(["/"], undefined, false), (s) => void s.settle(true, true)], false, /reloading/],
    ["a refetch covers a path, a later baseline completes it", [(s) => s.eventWrote(["/a/1"]), (s) => s.lose("x"), (s) => s.baselineWrote(["/a"], undefined, false), (s) => s.baselineWrote([], 9n), (s) => void s.settle(true, true)], true, undefined],
    ["events after the baseline are held; a second loss loses them too", [(s) => s.lose("x"), (s) => s.baselineWrote([], 3n), (s) => s.eventWrote(["/later"]), (s) => s.lose("again"), (s) => s.baselineWrote([], 5n), (s) => void s.settle(true, true)], false, /\(x\).*\/later/],
    ["a data-less client settles without a baseline", [(s) => s.lose("x"), (s) => void s.settle(true, false)], true, undefined],
    ["carried on from an earlier run", [(s) => s.lose("earlier", ["/x"], "2025-01-01T00:00:00.000Z"), (s) => s.baselineWrote(["/y"], 1n), (s) => void s.settle(true, true)], false, /at 2025-01-01T00:00:00.000Z \(earlier\).*\/x/],
    ["restored() brings it back whatever is missing", [(s) => s.eventWrote(["/a"]), (s) => s.lose("x"), (s) => s.restored()], true, undefined],
    ["the log's whole snapshot replayed with the baseline brings back what no baseline entry covers", [(s) => s.eventWrote(["/truth/k1"]), (s) => s.lose("x"), (s) => s.replayed(), (s) => s.baselineWrote(["/check"], 7n), (s) => void s.settle(true, true)], true, undefined],
    ["a replayed snapshot still waits for the policy and the baseline", [(s) => s.eventWrote(["/truth/k1"]), (s) => s.lose("x"), (s) => s.replayed(), (s) => void s.settle(false, true)], false, /reloading/],
    ["what a replay brought back is lost again with the next loss", [(s) => s.eventWrote(["/truth/k1"]), (s) => s.lose("x"), (s) => s.replayed(), (s) => s.baselineWrote([], 7n), (s) => void s.settle(true, true), (s) => s.lose("again"), (s) => s.baselineWrote([], 9n), (s) => void s.settle(true, true)], false, /\/truth\/k1/],
  ];
  for (const [name, steps, held, message] of cases) {
    await t.test(name, () => {
      const s = state();
      for (const step of steps) step(s);
      assert.equal(s.held, held);
      if (message === undefined) assert.equal(s.message(), undefined);
      else assert.match(s.message() ?? "", message);
      assert.equal(s.report().held, held);
    });
  }
});

test("StoreState: remembered paths stay bounded, folding towards the root (never looser)", () => {
  const s = state();
  s.eventWrote(Array.from({ length: 10_001 }, (_, i) => `/big/k${i}`));
  s.lose("x");
  assert.deepEqual(s.notHeld(10), ["/big"]);
  s.baselineWrote(["/big/k1"], 2n);
  assert.equal(s.settle(true, true), false, "one key rewritten does not cover the folded path");
  s.baselineWrote(["/big"], 3n);
  assert.equal(s.settle(true, true), true);
});

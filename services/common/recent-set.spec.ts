import assert from "node:assert/strict";
import test from "node:test";
import { RecentSet } from "./recent-set.js";

test("keeps the newest values up to its capacity, evicting the oldest first; a value added again keeps its place", () => {
  const recent = new RecentSet(3);
  for (const value of ["a", "b", "c"]) recent.add(value);
  recent.add("a");
  assert.equal(recent.size, 3);
  recent.add("d");
  assert.deepEqual(["a", "b", "c", "d"].map((value) => recent.has(value)), [false, true, true, true]);
  for (let index = 0; index < 10_000; index++) recent.add(`x${index}`);
  assert.equal(recent.size, 3);
  assert.deepEqual(["x9997", "x9998", "x9999", "x9996"].map((value) => recent.has(value)), [true, true, true, false]);
});

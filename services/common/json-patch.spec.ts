import { test } from "node:test";
import assert from "node:assert/strict";
import { jsonPatchProblem } from "./json-patch.js";

test("jsonPatchProblem", async (t) => {
  const cases: Array<[string, unknown, RegExp | undefined]> = [
    ["valid add/remove/replace", [{ op: "add", path: "/a", value: 1 }, { op: "remove", path: "/b" }, { op: "replace", path: "/c", value: 2 }], undefined],
    ["move is refused (OPA does not apply it)", [{ op: "move", from: "/a", path: "/c" }], /op must be one of add, remove, replace/],
    ["test is refused (OPA does not apply it)", [{ op: "test", path: "/a", value: 1 }], /op must be one of/],
    ["add with null value is valid", [{ op: "add", path: "/a", value: null }], undefined],
    ["append to array", [{ op: "add", path: "/list/-", value: 3 }], undefined],
    ["empty list is valid", [], undefined],
    ["not a list", { op: "add", path: "/a", value: 1 }, /must be a JSON Patch list/],
    ["operation not an object", [1], /operation 0: must be an object/],
    ["unknown op", [{ op: "merge", path: "/a" }], /operation 0: op must be one of/],
    ["add without value", [{ op: "add", path: "/a" }], /"add" requires a value/],
    ["replace without value", [{ op: "remove", path: "/a" }, { op: "replace", path: "/a" }], /operation 1: "replace" requires a value/],
    ["path without slash", [{ op: "remove", path: "a" }], /path must be "" or start with "\/"/],
  ];
  for (const [name, input, expected] of cases) {
    await t.test(name, () => {
      const problem = jsonPatchProblem(input);
      if (expected === undefined) assert.equal(problem, undefined);
      else assert.match(problem ?? "", expected);
    });
  }
});

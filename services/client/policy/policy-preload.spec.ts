import assert from "node:assert/strict";
import { test } from "node:test";
import { isPreloadablePath } from "./policy-preload.js";

test("only plain relative .rego paths are passed to OPA as files (they become the policy ids unchanged)", () => {
  for (const path of ["a.rego", "team1/m1.rego", "deep/er/x_y-z.rego"]) assert.equal(isPreloadablePath(path), true, path);
  for (const path of ["/abs.rego", "-flag.rego", "../up.rego", "a/../b.rego", "./a.rego", "a//b.rego", "data.json", "a\0.rego"]) assert.equal(isPreloadablePath(path), false, path);
});

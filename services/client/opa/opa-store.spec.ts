import { test } from "node:test";
import assert from "node:assert/strict";
import { dataUrlPath } from "./opa-store.js";

test("dataUrlPath", async (t) => {
  const cases: Array<[string, string, string]> = [
    ["root", "/", "/v1/data"],
    ["empty path is the root", "", "/v1/data"],
    ["repeated slashes are the root", "///", "/v1/data"],
    ["one segment", "/users", "/v1/data/users"],
    ["nested segments", "/a/b/c", "/v1/data/a/b/c"],
    ["no leading slash", "users/admins", "/v1/data/users/admins"],
    ["trailing slash dropped", "/users/", "/v1/data/users"],
    ["empty segments dropped", "//a//b", "/v1/data/a/b"],
    ["space escaped", "/team a/b", "/v1/data/team%20a/b"],
    ["percent escaped", "/100%", "/v1/data/100%25"],
    ["query and fragment characters escaped", "/x?y#z", "/v1/data/x%3Fy%23z"],
    ["unicode escaped as UTF-8", "/ü", "/v1/data/%C3%BC"],
    ["OPA-safe characters kept", "/a-b_c.d~e", "/v1/data/a-b_c.d~e"],
  ];
  for (const [name, path, expected] of cases) {
    await t.test(name, () => assert.equal(dataUrlPath(path), expected));
  }
});

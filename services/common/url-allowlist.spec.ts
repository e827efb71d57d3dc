import { test } from "node:test";
import assert from "node:assert/strict";
import { jsonDepth } from "./json-depth.js";
import { UrlAllowlist } from "./url-allowlist.js";

test("UrlAllowlist", async (t) => {
  const list = new UrlAllowlist(["https://api.example.com/v1/", "data.example.org", "*.corp.example", "postgresql://db.internal/"]);
  const cases: Array<[string, string, boolean]> = [
    ["a URL under an allowed prefix", "https://api.example.com/v1/users", true],
    ["the prefix itself", "https://api.example.com/v1/", true],
    ["a sibling path that shares the prefix's letters", "https://api.example.com/v10/users", false],
    ["another scheme on the prefix's host", "http://api.example.com/v1/users", false],
    ["another port", "https://api.example.com:8443/v1/users", false],
    ["an allowed host, any path", "https://data.example.org/anything?x=1", true],
    ["a subdomain of an allowed suffix", "https://hr.corp.example/users", true],
    ["the bare suffix domain is not a subdomain", "https://corp.example/users", false],
    ["an internal address", "http://169.254.169.254/latest/meta-data", false],
    ["a host that ends like an allowed one", "https://evildata.example.org/", false],
    ["userinfo cannot smuggle a host", "https://api.example.com@evil.test/v1/x", false],
    ["a database URL under its prefix", "postgresql://db.internal/policies", true],
    ["not a URL", "::nonsense", false],
  ];
  for (const [name, url, expected] of cases) await t.test(name, () => assert.equal(list.allows(url), expected));
  await t.test("an empty list allows everything", () => assert.equal(new UrlAllowlist([]).allows("http://10.0.0.1/"), true));
});

test("UrlAllowlist.problem names bad rules", () => {
  assert.equal(UrlAllowlist.problem("https://ok.example/"), undefined);
  assert.equal(UrlAllowlist.problem("*.ok.example"), undefined);
  assert.match(UrlAllowlist.problem("https://") ?? "", /not a URL/);
  assert.match(UrlAllowlist.problem("not a host!") ?? "", /neither/);
});

test("jsonDepth measures nesting without recursion", () => {
  assert.equal(jsonDepth(1, 10), 0);
  assert.equal(jsonDepth({}, 10), 1);
  assert.equal(jsonDepth({ a: [1, { b: [] }] }, 10), 4);
  let deep: unknown = 0;
  for (let i = 0; i < 200_000; i++) deep = [deep];
  assert.ok(jsonDepth(deep, 64) > 64, "stops early past the limit, no stack overflow");
});

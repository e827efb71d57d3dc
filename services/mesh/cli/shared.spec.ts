import assert from "node:assert/strict";
import { test } from "node:test";
import { UsageError, formatDetail, serverUrlFrom, tokenFrom } from "./shared.js";

test("the server's detail, one line per field error", async (t) => {
  const cases: Array<[string, unknown, string]> = [
    ["a message", "invalid token", "  invalid token"],
    ["FastAPI's 422 list", [{ loc: ["body", "entries", 0, "dst_path"], msg: "is bad", type: "value_error" }, { loc: [], msg: "and more" }], "  entries.0.dst_path: is bad\n  and more"],
    ["anything else as JSON", { odd: true }, '  {"odd":true}'],
  ];
  for (const [name, detail, expected] of cases) await t.test(name, () => assert.equal(formatDetail(detail), expected));
});

test("the server URL: flag, then the first of OPAL_SERVER_URL, then OPAL's default", async (t) => {
  await t.test("flag wins", () => assert.equal(serverUrlFrom("http://a:1/", { OPAL_SERVER_URL: "http://b:2" }), "http://a:1"));
  await t.test("a client's list", () => assert.equal(serverUrlFrom(undefined, { OPAL_SERVER_URL: "http://b:2, http://c:3" }), "http://b:2"));
  await t.test("a JSON list", () => assert.equal(serverUrlFrom(undefined, { OPAL_SERVER_URL: '["http://d:4"]' }), "http://d:4"));
  await t.test("default", () => assert.equal(serverUrlFrom(undefined, {}), "http://localhost:7002"));
  await t.test("not a URL", () => assert.throws(() => serverUrlFrom("localhost:7002", {}), (error) => error instanceof UsageError && error.flag === "--server-url"));
});

test("the token: --token, then the argument, then the variable", () => {
  assert.equal(tokenFrom("f", "p", { T: "e" }, "T"), "f");
  assert.equal(tokenFrom(undefined, "p", { T: "e" }, "T"), "p");
  assert.equal(tokenFrom(undefined, undefined, { T: " e " }, "T"), "e");
  assert.equal(tokenFrom(undefined, undefined, { T: "" }, "T"), undefined);
});

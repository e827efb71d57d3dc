import assert from "node:assert/strict";
import { test } from "node:test";
import { type PublishFlags, buildDataUpdate } from "./publish-data-update.js";
import { UsageError } from "./shared.js";

const defaults: PublishFlags = { dstPath: "", saveMethod: "PUT" };
const build = (flags: Partial<PublishFlags>, given: Array<keyof PublishFlags> = Object.keys(flags) as Array<keyof PublishFlags>): ReturnType<typeof buildDataUpdate> =>
  buildDataUpdate({ ...defaults, ...flags }, (flag) => given.includes(flag));

test("the DataUpdate body from OPAL's flags", async (t) => {
  const cases: Array<[string, Partial<PublishFlags>, unknown]> = [
    ["a source, on the default topic", { srcUrl: "https://svc/users", dstPath: "/users" }, { entries: [{ url: "https://svc/users", topics: ["policy_data"], dst_path: "/users", save_method: "PUT" }] }],
    ["inline data, topics and a reason", { data: '{"a":1}', topic: ["t1", "t2"], reason: "why" }, { entries: [{ data: { a: 1 }, topics: ["t1", "t2"], dst_path: "", save_method: "PUT" }], reason: "why" }],
    ["a fetcher config", { srcUrl: "https://svc", srcConfig: '{"headers":{"x":"y"}}' }, { entries: [{ url: "https://svc", config: { headers: { x: "y" } }, topics: ["policy_data"], dst_path: "", save_method: "PUT" }] }],
    ["a DELETE needs no source", { saveMethod: "delete", dstPath: "/users/bob" }, { entries: [{ topics: ["policy_data"], dst_path: "/users/bob", save_method: "DELETE" }] }],
    ["--entries, then the single entry", { entries: '[{"url":"https://a"}]', data: "1" }, { entries: [{ url: "https://a" }, { data: 1, topics: ["policy_data"], dst_path: "", save_method: "PUT" }] }],
    ["--entries alone, passed as given", { entries: '[{"url":"https://a","dst_path":"x"}]' }, { entries: [{ url: "https://a", dst_path: "x" }] }],
  ];
  for (const [name, flags, expected] of cases) await t.test(name, () => assert.deepEqual(build(flags), expected));
});

test("bad flags name the flag", async (t) => {
  const cases: Array<[string, Partial<PublishFlags>, string]> = [
    ["invalid --data", { data: "{nope" }, "--data"],
    ["--entries not a list", { entries: '{"url":"x"}' }, "--entries"],
    ["invalid --entries", { entries: "[" }, "--entries"],
    ["unknown save method", { data: "1", saveMethod: "POST" }, "--save-method"],
    ["--src-config not an object", { srcUrl: "https://a", srcConfig: "[1]" }, "--src-config"],
    ["a single-entry flag without the entry", { entries: "[]", topic: ["t"] }, "--topic"],
    ["nothing to publish", {}, "--src-url/--data/--entries"],
  ];
  for (const [name, flags, flag] of cases) {
    await t.test(name, () => assert.throws(() => build(flags), (error) => error instanceof UsageError && error.flag === flag));
  }
});

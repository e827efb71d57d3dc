import assert from "node:assert/strict";
import { test } from "node:test";
import { parseTtlFlag } from "./obtain-token.js";
import { UsageError } from "./shared.js";

test("--ttl: seconds, ISO 8601, or OPAL's <n> <unit>", async (t) => {
  const cases: Array<[string, number | string]> = [
    ["3600", 3600],
    ["P30D", "P30D"],
    ["PT1H30M", "PT1H30M"],
    ["365 days", 365 * 86_400],
    ["2 hours", 7_200],
    ["1 week", 604_800],
    ["1000000 milliseconds", 1_000],
  ];
  for (const [input, expected] of cases) await t.test(input, () => assert.equal(parseTtlFlag(input), expected));
});

test("--ttl refuses what the server would", async (t) => {
  for (const input of ["0", "-5", "P", "PT", "soon", "3 fortnights", "1 microseconds"]) {
    await t.test(JSON.stringify(input), () => assert.throws(() => parseTtlFlag(input), (error) => error instanceof UsageError && error.flag === "--ttl"));
  }
});

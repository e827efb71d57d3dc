/**
 * The benchmarks at smoke sizes, through `bench/run.ts --smoke` as `npm run bench` runs
 * them: every scenario must complete its correctness checks (each throws when an update is
 * lost, a client is not caught up, OPA does not hold what was loaded) and record metrics a
 * reader can use. No timing is asserted here; timings belong to `npm run bench`.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { SCENARIO_NAMES } from "../bench/scenario-names.js";
import type { RecordedResult } from "../bench/results-table.js";

test("every benchmark scenario runs at smoke size, checks what it delivered, and records medians and p99s", { timeout: 900_000 }, async () => {
  const out = mkdtempSync(join(tmpdir(), "opal-mesh-bench-smoke-"));
  try {
    const stderr: string[] = [];
    const child = spawn(process.execPath, ["--import", "tsx", "bench/run.ts", "--smoke", "--out", out], { stdio: ["ignore", "ignore", "pipe"] });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr.push(chunk);
      if (process.env.TEST_LOG_LEVEL !== undefined) process.stderr.write(chunk);
    });
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    assert.equal(code, 0, `bench/run.ts --smoke failed:\n${stderr.join("").slice(-6000)}`);
    const markdown = readFileSync(join(out, "RESULTS.md"), "utf8");
    for (const name of SCENARIO_NAMES) {
      const result = JSON.parse(readFileSync(join(out, `${name}.json`), "utf8")) as RecordedResult;
      assert.equal(result.scenario, name);
      assert.equal(result.smoke, true);
      assert.ok(result.metrics.length > 0, `${name} recorded no metrics`);
      for (const metric of result.metrics) {
        assert.ok(metric.n > 0, `${name}: "${metric.name}" has no samples`);
        assert.ok(Number.isFinite(metric.median) && Number.isFinite(metric.p99), `${name}: "${metric.name}" is not a number`);
        assert.ok(metric.median <= metric.p99, `${name}: "${metric.name}" has a median above its p99`);
      }
      assert.match(markdown, new RegExp(`^## ${name}$`, "m"), `RESULTS.md has no section for ${name}`);
    }
    assert.match(markdown, /Node v24\.\d+\.\d+; OPA 1\.\d+\.\d+/, "RESULTS.md names the Node and OPA versions");
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

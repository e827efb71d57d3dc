import assert from "node:assert/strict";
import test from "node:test";
import { Histogram, Registry } from "prom-client";
import { TalliedHistogram } from "./tallied-histogram.js";
import { LATENCY_BUCKETS } from "./metrics.js";

test("scraped, it reads exactly as prom-client's own histogram fed the same observations", async () => {
  const ours = new Registry();
  const theirs = new Registry();
  const tallied = new TalliedHistogram({ name: "x_seconds", help: "h", labelName: "kind", labelValues: ["data", "policy"], buckets: LATENCY_BUCKETS, registers: [ours] });
  const reference = new Histogram({ name: "x_seconds", help: "h", labelNames: ["kind"], buckets: [...LATENCY_BUCKETS], registers: [theirs] });
  reference.zero({ kind: "data" });
  reference.zero({ kind: "policy" });
  // On the bounds, between them, past the last one, and a label value not declared up front.
  const observations: Array<[string, number]> = [["data", 0.001], ["data", 0.0011], ["data", 0.03], ["policy", 61], ["data", 0], ["other", 2.5], ["data", 60]];
  for (const [kind, value] of observations) {
    tallied.observe(kind, value);
    reference.observe({ kind }, value);
  }
  assert.equal(await ours.metrics(), await theirs.metrics());
  ours.resetMetrics();
  reference.reset();
  for (const kind of ["data", "policy", "other"]) reference.zero({ kind });
  assert.equal(await ours.metrics(), await theirs.metrics(), "reset keeps the series at zero");
});

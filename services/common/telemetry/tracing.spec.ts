import { test } from "node:test";
import assert from "node:assert/strict";
import { SpanKind } from "@opentelemetry/api";
import { createTracing, ROOT, Tracing, traceIdOf } from "./tracing.js";
import type { TelemetryConfig } from "../config/telemetry-config.js";

const off: TelemetryConfig = { exporter: "none", protocol: "http/protobuf", endpoint: "http://localhost:4318/v1/traces", headers: {}, serviceName: "t", sampler: "parentbased_always_on", samplerRatio: 1, batchDelayMs: 5000 };

test("off: no context is ever written, whatever arrives", () => {
  const tracing = Tracing.disabled();
  const parent = tracing.extract({ traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", tracestate: "" });
  const span = tracing.start("x", { kind: SpanKind.INTERNAL, parent });
  assert.equal(span.isRecording(), false);
  assert.equal(tracing.inject(span), undefined);
  assert.equal(createTracing(off).enabled, false);
});

test("on: a child continues its parent's trace, and the carrier names the child", async () => {
  const tracing = Tracing.create({ ...off, exporter: "console" });
  try {
    const parent = tracing.extract({ traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", tracestate: "vendor=1" });
    const span = tracing.start("child", { kind: SpanKind.CONSUMER, parent });
    const carrier = tracing.inject(span);
    assert.ok(carrier !== undefined);
    assert.equal(traceIdOf(carrier.traceparent), "0af7651916cd43dd8448eb211c80319c");
    assert.notEqual(carrier.traceparent.split("-")[2], "b7ad6b7169203331", "the carrier names the new span");
    assert.equal(carrier.tracestate, "vendor=1");
    const root = tracing.start("root", { kind: SpanKind.PRODUCER, parent: ROOT });
    assert.notEqual(traceIdOf(tracing.inject(root)?.traceparent), "0af7651916cd43dd8448eb211c80319c", "ROOT starts a new trace");
    // Not ended: nothing is exported (the console exporter would print it).
  } finally {
    await tracing.shutdown();
  }
});

test("traceIdOf reads W3C traceparent, and nothing else", () => {
  assert.equal(traceIdOf("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"), "0af7651916cd43dd8448eb211c80319c");
  assert.equal(traceIdOf("00-00000000000000000000000000000000-b7ad6b7169203331-01"), "");
  assert.equal(traceIdOf("garbage"), "");
  assert.equal(traceIdOf(undefined), "");
});

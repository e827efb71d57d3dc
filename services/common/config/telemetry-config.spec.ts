import { test } from "node:test";
import assert from "node:assert/strict";
import { EnvReader } from "./env-reader.js";
import { readTelemetryConfig } from "./telemetry-config.js";

function read(env: Record<string, string>) {
  const reader = new EnvReader(env);
  const config = readTelemetryConfig(reader, "opal-mesh-test");
  assert.deepEqual(reader.problems, []);
  return config;
}

test("off unless an exporter or an endpoint is named", () => {
  assert.equal(read({}).exporter, "none");
  assert.equal(read({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" }).exporter, "otlp");
  assert.equal(read({ OTEL_TRACES_EXPORTER: "console" }).exporter, "console");
});

test("endpoints as the specification says: the base gets /v1/traces over http, the traces URL is used as it is", () => {
  assert.equal(read({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318/" }).endpoint, "http://collector:4318/v1/traces");
  assert.equal(read({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://collector:4318/custom" }).endpoint, "http://collector:4318/custom");
  assert.equal(read({ OTEL_EXPORTER_OTLP_PROTOCOL: "grpc", OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4317" }).endpoint, "http://collector:4317");
  assert.equal(read({ OTEL_TRACES_EXPORTER: "otlp", OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" }).endpoint, "http://localhost:4317");
  assert.equal(read({ OTEL_TRACES_EXPORTER: "otlp" }).endpoint, "http://localhost:4318/v1/traces");
});

test("service name, sampler, headers, batch delay", () => {
  const config = read({ OTEL_SERVICE_NAME: "edge", OTEL_TRACES_SAMPLER: "parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG: "0.25", OTEL_EXPORTER_OTLP_HEADERS: "api-key=s%3Dcret,x=1", OTEL_BSP_SCHEDULE_DELAY: "100" });
  assert.equal(config.serviceName, "edge");
  assert.equal(read({}).serviceName, "opal-mesh-test");
  assert.equal(config.sampler, "parentbased_traceidratio");
  assert.equal(config.samplerRatio, 0.25);
  assert.deepEqual(config.headers, { "api-key": "s=cret", x: "1" });
  assert.equal(config.batchDelayMs, 100);
});

test("a bad value names its variable (and never echoes a header's secret)", () => {
  for (const [env, name] of [
    [{ OTEL_TRACES_EXPORTER: "zipkin" }, "OTEL_TRACES_EXPORTER"],
    [{ OTEL_EXPORTER_OTLP_PROTOCOL: "thrift" }, "OTEL_EXPORTER_OTLP_PROTOCOL"],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318" }, "OTEL_EXPORTER_OTLP_ENDPOINT"],
    [{ OTEL_TRACES_SAMPLER_ARG: "2" }, "OTEL_TRACES_SAMPLER_ARG"],
    [{ OTEL_EXPORTER_OTLP_HEADERS: "supersecretvalue" }, "OTEL_EXPORTER_OTLP_HEADERS"],
  ] as const) {
    const reader = new EnvReader(env);
    readTelemetryConfig(reader, "x");
    const problems = reader.problems.join("\n");
    assert.match(problems, new RegExp(name));
    assert.doesNotMatch(problems, /supersecretvalue/);
  }
});

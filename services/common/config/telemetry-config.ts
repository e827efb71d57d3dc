/**
 * Tracing from the standard OTEL_* variables. Unlike the OpenTelemetry default (export
 * to a local OTLP endpoint), tracing is off until OTEL_TRACES_EXPORTER or an OTLP endpoint
 * is set, so a process nobody observes spends nothing on spans.
 */
import type { EnvReader } from "./env-reader.js";

export type OtlpProtocol = "grpc" | "http/protobuf" | "http/json";
export type SamplerName = "always_on" | "always_off" | "traceidratio" | "parentbased_always_on" | "parentbased_always_off" | "parentbased_traceidratio";

export interface TelemetryConfig {
  exporter: "otlp" | "console" | "none";
  protocol: OtlpProtocol;
  /** Where spans go: the traces URL for http, the collector address for grpc. */
  endpoint: string;
  /** OTEL_EXPORTER_OTLP_HEADERS, e.g. an API key: never logged. */
  headers: Record<string, string>;
  /** OTEL_SERVICE_NAME, else the process's own name (opal-mesh-server, opal-mesh-client, …). */
  serviceName: string;
  /** OTEL_BSP_SCHEDULE_DELAY: how long spans wait to be exported in a batch. */
  batchDelayMs: number;
  sampler: SamplerName;
  samplerRatio: number;
  /** OPAL_MESH_HOP_TIMING_FILE: where the latency budget's hop timestamps go (bench); off when unset. */
  hopTimingFile?: string | undefined;
}

const SAMPLERS: readonly SamplerName[] = ["always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"];

export function readTelemetryConfig(env: EnvReader, processName: string): TelemetryConfig {
  const tracesEndpoint = env.optionalString("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
  const baseEndpoint = env.optionalString("OTEL_EXPORTER_OTLP_ENDPOINT");
  const exporter = env.oneOf("OTEL_TRACES_EXPORTER", tracesEndpoint !== undefined || baseEndpoint !== undefined ? "otlp" : "none", ["otlp", "console", "none"] as const);
  const protocol = env.oneOf<OtlpProtocol>("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", env.oneOf<OtlpProtocol>("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf", ["grpc", "http/protobuf", "http/json"]), ["grpc", "http/protobuf", "http/json"]);
  const defaultBase = protocol === "grpc" ? "http://localhost:4317" : "http://localhost:4318";
  // As the specification says: a signal-specific URL is used as it is; the base gets /v1/traces (http).
  let endpoint = tracesEndpoint ?? (protocol === "grpc" ? (baseEndpoint ?? defaultBase) : `${(baseEndpoint ?? defaultBase).replace(/\/+$/, "")}/v1/traces`);
  try {
    const url = new URL(endpoint);
    if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error("scheme");
  } catch {
    env.problem(tracesEndpoint !== undefined ? "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" : "OTEL_EXPORTER_OTLP_ENDPOINT", "must be an http(s) URL");
    endpoint = defaultBase;
  }
  const sampler = env.oneOf<SamplerName>("OTEL_TRACES_SAMPLER", "parentbased_always_on", SAMPLERS);
  const samplerRatio = env.number("OTEL_TRACES_SAMPLER_ARG", 1, { min: 0, max: 1 });
  return { exporter, protocol, endpoint, headers: parseHeaders(env), serviceName: env.string("OTEL_SERVICE_NAME", processName), sampler, samplerRatio, batchDelayMs: env.int("OTEL_BSP_SCHEDULE_DELAY", 5_000, { min: 1 }), hopTimingFile: env.optionalString("OPAL_MESH_HOP_TIMING_FILE") };
}

/** `key1=value1,key2=value2`, values URL-encoded (the specification's format). */
function parseHeaders(env: EnvReader): Record<string, string> {
  const raw = env.optionalString("OTEL_EXPORTER_OTLP_TRACES_HEADERS") ?? env.optionalString("OTEL_EXPORTER_OTLP_HEADERS");
  const headers: Record<string, string> = {};
  if (raw === undefined) return headers;
  for (const pair of raw.split(",")) {
    if (pair.trim() === "") continue;
    const index = pair.indexOf("=");
    if (index <= 0) {
      // The value may be a secret: name the variable, not the content.
      env.problem("OTEL_EXPORTER_OTLP_HEADERS", "must be a list of key=value pairs");
      continue;
    }
    try {
      headers[decodeURIComponent(pair.slice(0, index).trim())] = decodeURIComponent(pair.slice(index + 1).trim());
    } catch {
      env.problem("OTEL_EXPORTER_OTLP_HEADERS", "holds a malformed %-escape");
    }
  }
  return headers;
}

/** A real Jaeger for the tracing tests, read back through its query API. */
import type { ChildProcess } from "node:child_process";
import { request } from "undici";
import { howToGetJaeger, jaegerPath, startJaeger } from "../../deploy/jaeger/jaeger.js";
import { cacheDirFrom } from "../../services/common/config/client-config.js";
import { existsSync } from "node:fs";
import { freePort } from "./ports.js";
import { waitFor } from "./wait.js";

export interface JaegerSpan {
  traceID: string;
  spanID: string;
  operationName: string;
  references: Array<{ refType: string; traceID: string; spanID: string }>;
  processID: string;
  tags: Array<{ key: string; value: unknown }>;
  /** The service that reported it (from the trace's processes). */
  service: string;
}

export interface RunningJaeger {
  /** OTLP/HTTP base (OTEL_EXPORTER_OTLP_ENDPOINT). */
  otlpHttp: string;
  /** OTLP/gRPC address. */
  otlpGrpc: string;
  queryUrl: string;
  /** Every span of a trace, [] until it is known. */
  trace(traceId: string): Promise<JaegerSpan[]>;
  /** Traces of a service (optionally one operation), newest first. */
  search(service: string, operation?: string): Promise<JaegerSpan[][]>;
  stop(): Promise<void>;
}

interface TraceJson {
  traceID: string;
  spans: Array<Omit<JaegerSpan, "service">>;
  processes: Record<string, { serviceName: string }>;
}

function flatten(trace: TraceJson): JaegerSpan[] {
  return trace.spans.map((span) => ({ ...span, service: trace.processes[span.processID]?.serviceName ?? "" }));
}

export async function startTestJaeger(): Promise<RunningJaeger> {
  const binary = jaegerPath(cacheDirFrom(process.env));
  if (!existsSync(binary)) throw new Error(howToGetJaeger(binary));
  const ports = { otlpGrpc: await freePort(), otlpHttp: await freePort(), query: await freePort(), health: await freePort() };
  const child: ChildProcess = startJaeger(binary, ports);
  const output: string[] = [];
  child.stderr?.on("data", (chunk: Buffer) => output.push(chunk.toString()));
  await waitFor(
    async () => {
      if (child.exitCode !== null) throw new Error(`Jaeger exited: ${output.join("").slice(-2000)}`);
      const response = await request(`http://127.0.0.1:${ports.health}/status`);
      await response.body.dump();
      return response.statusCode === 200;
    },
    { timeoutMs: 30_000, message: () => `Jaeger to be healthy: ${output.join("").slice(-1000)}` },
  );
  const queryUrl = `http://127.0.0.1:${ports.query}`;
  return {
    otlpHttp: `http://127.0.0.1:${ports.otlpHttp}`,
    otlpGrpc: `http://127.0.0.1:${ports.otlpGrpc}`,
    queryUrl,
    async trace(traceId) {
      const response = await request(`${queryUrl}/api/traces/${traceId}`);
      if (response.statusCode === 404) {
        await response.body.dump();
        return [];
      }
      const json = (await response.body.json()) as { data?: TraceJson[] };
      return json.data?.[0] === undefined ? [] : flatten(json.data[0]);
    },
    async search(service, operation) {
      const query = new URLSearchParams({ service, limit: "50", lookback: "1h" });
      if (operation !== undefined) query.set("operation", operation);
      const response = await request(`${queryUrl}/api/traces?${query.toString()}`);
      const json = (await response.body.json()) as { data?: TraceJson[] };
      return (json.data ?? []).map(flatten);
    },
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await exited;
    },
  };
}

/** The span's parent within the trace (CHILD_OF reference), if any. */
export function parentOf(span: JaegerSpan, spans: readonly JaegerSpan[]): JaegerSpan | undefined {
  const reference = span.references.find((ref) => ref.refType === "CHILD_OF");
  return reference === undefined ? undefined : spans.find((candidate) => candidate.spanID === reference.spanID);
}

export function tag(span: JaegerSpan, key: string): unknown {
  return span.tags.find((entry) => entry.key === key)?.value;
}

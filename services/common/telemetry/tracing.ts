/**
 * One trace per update, across processes. Each process gets its own tracer provider from
 * `createTracing` (tests run several servers and clients in one Node process), nothing is
 * registered globally, and contexts are passed explicitly — in the log event, Kafka
 * headers, stream messages and ACKs as W3C `traceparent`/`tracestate`. Off, every call
 * here is a cheap no-op and no context is written anywhere.
 */
import { type Attributes, type Context, ROOT_CONTEXT, type Span, SpanKind, SpanStatusCode, trace, type Tracer } from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { OTLPTraceExporter as GrpcExporter } from "@opentelemetry/exporter-trace-otlp-grpc";
import { OTLPTraceExporter as JsonExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { OTLPTraceExporter as ProtobufExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BasicTracerProvider,
  BatchSpanProcessor,
  ConsoleSpanExporter,
  ParentBasedSampler,
  type Sampler,
  type SpanExporter,
  TraceIdRatioBasedSampler,
} from "@opentelemetry/sdk-trace-base";
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from "@opentelemetry/semantic-conventions";
import type { TelemetryConfig } from "../config/telemetry-config.js";
import { VERSION } from "../version.js";
import { hopClock } from "./hop-clock.js";

export { SpanKind };
/** The empty context: a span started under it begins a new trace. */
export const ROOT = ROOT_CONTEXT;
export type { Attributes, Context, Span };

/** W3C trace context as messages carry it (proto TraceContext has these two fields). */
export interface TraceCarrier {
  traceparent: string;
  tracestate: string;
}

const propagator = new W3CTraceContextPropagator();
const setter = { set: (carrier: Record<string, string>, key: string, value: string) => void (carrier[key] = value) };
const getter = {
  get: (carrier: Record<string, string | string[] | undefined>, key: string) => carrier[key],
  keys: (carrier: Record<string, unknown>) => Object.keys(carrier),
};

export interface StartOptions {
  kind: SpanKind;
  parent: Context;
  attributes?: Attributes;
}

export class Tracing {
  private constructor(
    readonly enabled: boolean,
    private readonly tracer: Tracer,
    private readonly provider: BasicTracerProvider | undefined,
  ) {}

  static disabled(): Tracing {
    return new Tracing(false, trace.getTracer("opal-mesh-off"), undefined);
  }

  static create(config: TelemetryConfig): Tracing {
    const exporter = createExporter(config);
    if (exporter === undefined) return Tracing.disabled();
    const provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: config.serviceName, [ATTR_SERVICE_VERSION]: VERSION }),
      sampler: createSampler(config),
      spanProcessors: [new BatchSpanProcessor(exporter, { scheduledDelayMillis: config.batchDelayMs })],
    });
    return new Tracing(true, provider.getTracer("opal-mesh", VERSION), provider);
  }

  /** The parent a carrier names (a message's TraceContext, HTTP headers); the root when none. */
  extract(carrier: Partial<TraceCarrier> | Record<string, string | string[] | undefined> | undefined): Context {
    if (!this.enabled || carrier === undefined) return ROOT_CONTEXT;
    return propagator.extract(ROOT_CONTEXT, carrier, getter);
  }

  /** The carrier for a span, to put in a message; undefined when tracing is off. */
  inject(span: Span | undefined): TraceCarrier | undefined {
    if (!this.enabled || span === undefined || !span.isRecording()) return undefined;
    const carrier: Record<string, string> = {};
    propagator.inject(trace.setSpan(ROOT_CONTEXT, span), carrier, setter);
    if (carrier.traceparent === undefined) return undefined;
    return { traceparent: carrier.traceparent, tracestate: carrier.tracestate ?? "" };
  }

  /** A span under `parent`; off, a no-op span that records nothing. */
  start(name: string, options: StartOptions): Span {
    return this.tracer.startSpan(name, { kind: options.kind, attributes: options.attributes }, options.parent);
  }

  /** The context whose active span is `span`, for children. */
  under(span: Span): Context {
    return trace.setSpan(ROOT_CONTEXT, span);
  }

  async forceFlush(): Promise<void> {
    await this.provider?.forceFlush();
  }

  /**
   * Exports what is still batched, then lets go. Never rejects: it runs as the process goes
   * away, and a collector that cannot be reached then loses only that last batch (the
   * process is ending: there is nobody left to tell but the log, which is closing too).
   */
  async shutdown(): Promise<void> {
    await this.provider?.shutdown().catch(() => undefined);
  }
}

/** Ends a span, marking it failed with a message (never a stack or a secret) when given. */
export function endSpan(span: Span, error?: unknown): void {
  if (error !== undefined && error !== null && error !== "") {
    const message = typeof error === "string" ? error : error instanceof Error ? error.message : "failed";
    span.setStatus({ code: SpanStatusCode.ERROR, message });
    span.setAttribute("error.type", typeof error === "object" && error !== null ? (error as Error).name || "Error" : "failed");
  }
  span.end();
}

/** The trace id of a W3C traceparent (`00-<32 hex>-<16 hex>-<2 hex>`), or "" when absent or malformed. */
export function traceIdOf(traceparent: string | undefined): string {
  const match = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}(-.*)?$/.exec(traceparent?.trim() ?? "");
  if (match === null) return "";
  const [, version = "", traceId = "", spanId = "", rest] = match;
  // Version ff is invalid, version 00 has exactly four fields, and all-zero ids are invalid.
  if (version === "ff" || (version === "00" && rest !== undefined) || /^0+$/.test(traceId) || /^0+$/.test(spanId)) return "";
  return traceId;
}

/**
 * The tracing of one process: the composition root calls this once, passes the result to
 * every part, and shuts it down in one place when the process stops.
 */
export function createTracing(config: TelemetryConfig): Tracing {
  if (config.hopTimingFile !== undefined) hopClock.start(config.hopTimingFile, config.serviceName);
  return Tracing.create(config);
}

function createExporter(config: TelemetryConfig): SpanExporter | undefined {
  if (config.exporter === "none") return undefined;
  if (config.exporter === "console") return new ConsoleSpanExporter();
  switch (config.protocol) {
    case "grpc":
      // Headers for gRPC come from OTEL_EXPORTER_OTLP_HEADERS, which the exporter reads itself.
      return new GrpcExporter({ url: config.endpoint });
    case "http/json":
      return new JsonExporter({ url: config.endpoint, headers: config.headers });
    default:
      return new ProtobufExporter({ url: config.endpoint, headers: config.headers });
  }
}

function createSampler(config: TelemetryConfig): Sampler {
  const ratio = new TraceIdRatioBasedSampler(config.samplerRatio);
  switch (config.sampler) {
    case "always_on":
      return new AlwaysOnSampler();
    case "always_off":
      return new AlwaysOffSampler();
    case "traceidratio":
      return ratio;
    case "parentbased_always_off":
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case "parentbased_traceidratio":
      return new ParentBasedSampler({ root: ratio });
    default:
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
  }
}

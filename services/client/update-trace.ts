/**
 * A client's part of an update's trace: one consumer span from the moment the event
 * arrives until it is acknowledged, with the fetches, the OPA writes and the ACK under
 * it. Untraced events (or tracing off) get no UpdateTrace at all.
 */
import type { Event } from "../../gen/opal/mesh/v1/event_pb.js";
import { type Context, endSpan, type Span, SpanKind, type TraceCarrier, type Tracing } from "../common/telemetry/tracing.js";

export class UpdateTrace {
  private ended = false;

  private constructor(
    private readonly tracing: Tracing,
    private readonly span: Span,
  ) {}

  static forEvent(tracing: Tracing, event: Event, clientId: string): UpdateTrace | undefined {
    if (!tracing.enabled || event.traceContext === undefined || event.traceContext.traceparent === "") return undefined;
    const kind = event.payload.case === "policyChanged" ? "policy" : "data";
    const span = tracing.start(`process ${kind === "policy" ? "policy update" : "data update"}`, {
      kind: SpanKind.CONSUMER,
      parent: tracing.extract(event.traceContext),
      attributes: {
        "messaging.system": "opal_mesh",
        "messaging.operation.type": "process",
        "messaging.destination.name": event.topics.join(","),
        "messaging.message.id": event.payload.case === "dataUpdate" ? event.payload.value.id : event.payload.case === "policyChanged" ? event.payload.value.hash : "",
        "opal_mesh.client_id": clientId,
        "opal_mesh.position": Number(event.position),
      },
    });
    return new UpdateTrace(tracing, span);
  }

  get context(): Context {
    return this.tracing.under(this.span);
  }

  /** A step of the update (a fetch, a write to OPA), ended by the caller with endSpan. */
  child(name: string, kind: SpanKind, attributes: Record<string, string | number | boolean>): Span {
    return this.tracing.start(name, { kind, parent: this.context, attributes });
  }

  /** The ACK's trace context: a producer span for sending it, under the update's span. */
  ack(error: string | undefined): TraceCarrier | undefined {
    const span = this.child("send ack", SpanKind.PRODUCER, { "messaging.system": "opal_mesh", "messaging.operation.type": "send", "messaging.destination.name": "ack", "opal_mesh.ack.status": error === undefined ? "applied" : "failed" });
    const carrier = this.tracing.inject(span);
    endSpan(span);
    return carrier;
  }

  end(error?: string): void {
    if (this.ended) return;
    this.ended = true;
    endSpan(this.span, error);
  }
}

/** Spans of HTTP calls the client makes (to a data source, to OPA): semantic-convention attributes, no query strings or credentials. */
export function httpClientAttributes(method: string, url: string): Record<string, string | number> {
  try {
    const parsed = new URL(url);
    return { "http.request.method": method, "server.address": parsed.hostname, "server.port": Number(parsed.port || (parsed.protocol === "https:" ? 443 : 80)), "url.full": `${parsed.protocol}//${parsed.host}${parsed.pathname}` };
  } catch {
    // Not a URL: the span names the method only (the fetch reports the bad URL).
    return { "http.request.method": method };
  }
}

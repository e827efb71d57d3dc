/**
 * The Kafka log's producer spans: one per traced event, started before the send (the event
 * then carries the span's context into the message), ended with its offset or the error.
 */
import { create } from "@bufbuild/protobuf";
import { type Event, TraceContextSchema } from "../../gen/opal/mesh/v1/event_pb.js";
import { endSpan, type Span, SpanKind, type Tracing } from "../common/telemetry/tracing.js";

export interface SendSpans {
  /** Each span's event, by its index in the batch. */
  spans: Array<{ span: Span; index: number }>;
}

export function startSendSpans(tracing: Tracing | undefined, topic: string, events: readonly Event[]): SendSpans {
  const spans: SendSpans["spans"] = [];
  if (tracing === undefined || !tracing.enabled) return { spans };
  events.forEach((event, index) => {
    if (event.traceContext === undefined || event.traceContext.traceparent === "") return;
    const span = tracing.start(`send ${topic}`, {
      kind: SpanKind.PRODUCER,
      parent: tracing.extract(event.traceContext),
      attributes: { "messaging.system": "kafka", "messaging.operation.type": "send", "messaging.destination.name": topic, "messaging.destination.partition.id": "0" },
    });
    const carrier = tracing.inject(span);
    if (carrier !== undefined) event.traceContext = create(TraceContextSchema, carrier);
    spans.push({ span, index });
  });
  return { spans };
}

/** Ends the spans: with each event's offset (from the batch's first), or with the send's error. */
export function endSendSpans(sent: SendSpans, outcome: { baseOffset: bigint } | { error: unknown }): void {
  for (const { span, index } of sent.spans) {
    if ("error" in outcome) {
      endSpan(span, outcome.error);
      continue;
    }
    span.setAttribute("messaging.kafka.offset", Number(outcome.baseOffset) + index);
    endSpan(span);
  }
}

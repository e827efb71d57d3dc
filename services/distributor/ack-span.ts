/** The distributor's span for an ACK: the last step of an update's trace, under the client's. */
import { type Ack, AckStatus } from "../../gen/opal/mesh/v1/distributor_pb.js";
import { endSpan, SpanKind, type Tracing } from "../common/telemetry/tracing.js";
import type { DistributorObserver } from "./observer.js";

/** Each ACK's span, as the distributor's observer. */
export function ackSpans(tracing: Tracing): DistributorObserver {
  return { onAck: (clientId, ack) => traceAck(tracing, clientId, ack) };
}

export function traceAck(tracing: Tracing, clientId: string, ack: Ack): void {
  if (!tracing.enabled || ack.traceContext === undefined || ack.traceContext.traceparent === "") return;
  const span = tracing.start("receive ack", {
    kind: SpanKind.CONSUMER,
    parent: tracing.extract(ack.traceContext),
    attributes: {
      "messaging.system": "opal_mesh",
      "messaging.operation.type": "receive",
      "messaging.destination.name": "ack",
      "opal_mesh.client_id": clientId,
      "opal_mesh.position": Number(ack.position),
      "opal_mesh.ack.status": ack.status === AckStatus.APPLIED ? "applied" : "failed",
    },
  });
  endSpan(span, ack.status === AckStatus.FAILED ? ack.error || "failed" : undefined);
}

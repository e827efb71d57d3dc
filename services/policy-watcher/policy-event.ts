/**
 * PolicyChanged as a log event, starting the policy update's trace: a producer span for
 * the announcement (a new version was seen by a poll, a webhook or a refresh), whose
 * context every client's apply continues.
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { type Event, EventSchema, type PolicyRolloutSchema } from "../../gen/opal/mesh/v1/event_pb.js";
import { endSpan, ROOT, type Span, SpanKind, type Tracing } from "../common/telemetry/tracing.js";
import type { PolicyChange } from "./watcher.js";

export function policyChangedEvent(change: PolicyChange, topics: string[], scope: string, tracing: Tracing | undefined, rollout?: MessageInitShape<typeof PolicyRolloutSchema>): { event: Event; span: Span | undefined } {
  const span = tracing?.enabled === true
    ? tracing.start("send policy change", {
        kind: SpanKind.PRODUCER,
        parent: ROOT,
        attributes: {
          "messaging.system": "opal_mesh",
          "messaging.operation.type": "send",
          "messaging.message.id": change.hash,
          "opal_mesh.policy.hash": change.hash,
          "opal_mesh.policy.old_hash": change.oldHash,
          "opal_mesh.policy.dirs": change.dirs.length,
          ...(scope === "" ? {} : { "opal_mesh.scope": scope }),
        },
      })
    : undefined;
  const event = create(EventSchema, { topics, payload: { case: "policyChanged", value: { hash: change.hash, oldHash: change.oldHash, dirs: change.dirs, scope, ...(rollout === undefined ? {} : { rollout }) } }, traceContext: tracing?.inject(span) });
  return { event, span };
}

/** Publishes it, ending the span with the outcome. */
export async function publishTraced(span: Span | undefined, publish: () => Promise<unknown>): Promise<void> {
  try {
    await publish();
    if (span !== undefined) endSpan(span);
  } catch (error) {
    if (span !== undefined) endSpan(span, error);
    throw error;
  }
}

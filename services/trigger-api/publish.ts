/**
 * Turns a validated DataUpdate into a log event. Shared by the Connect route and OPAL's
 * REST route so both assign ids, address topics and start the update's trace the same way.
 */
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError } from "@connectrpc/connect";
import type { BroadcasterService } from "../../gen/opal/mesh/v1/broadcaster_pb.js";
import type { DataUpdate } from "../../gen/opal/mesh/v1/data_pb.js";
import { type Event, EventSchema } from "../../gen/opal/mesh/v1/event_pb.js";
import { HttpError } from "../common/http/http-error.js";
import { type Context, endSpan, SpanKind, type Tracing } from "../common/telemetry/tracing.js";
import type { EventBatcher } from "./event-batcher.js";

/** Where a trigger appends: batched appends, and the broadcaster itself for an event sent alone. */
export interface EventSink {
  broadcaster: Client<typeof BroadcasterService>;
  /** One per process: the REST route and the Connect service share it. */
  batcher: EventBatcher;
}

export interface Published {
  id: string;
  position: bigint;
}

/** Where the publish span hangs: the caller's server span, in this process's tracing. */
export interface PublishTrace {
  tracing: Tracing;
  parent: Context;
  /** The log's name (OPAL_BROADCAST_CHANNEL_NAME), messaging.destination.name. */
  destination: string;
}

export async function publishDataUpdate(sink: EventSink, update: DataUpdate, signal?: AbortSignal, trace?: PublishTrace): Promise<Published> {
  // OPAL's clients assign a uuid4 hex when the publisher gives none; we do it once, here,
  // so every client and every status report agree on the id.
  if (update.id === "") update.id = randomUUID().replaceAll("-", "");
  // A multi-topic update is sent whole to the union of its topics; clients filter entries
  // (OPAL #271), so one position covers the whole update.
  const topics = [...new Set(update.entries.flatMap((entry) => entry.topics))];
  const span = trace?.tracing.start(`send ${trace.destination}`, {
    kind: SpanKind.PRODUCER,
    parent: trace.parent,
    attributes: { "messaging.system": "opal_mesh", "messaging.operation.type": "send", "messaging.operation.name": "publish", "messaging.destination.name": trace.destination, "messaging.message.id": update.id, "opal_mesh.entries": update.entries.length },
  });
  const event = create(EventSchema, { topics, payload: { case: "dataUpdate", value: update }, traceContext: trace?.tracing.inject(span) });
  try {
    // An event the broadcaster would refuse (no topic) goes alone, so its refusal fails only
    // its own caller; the rest share batched appends. A batch is not cancelled with one
    // caller: once handed over, the event is logged whether or not that caller waits.
    signal?.throwIfAborted();
    const position = topics.length === 0 ? await publishAlone(sink.broadcaster, event, signal) : await sink.batcher.append(event);
    span?.setAttribute("opal_mesh.position", Number(position));
    if (span !== undefined) endSpan(span);
    return { id: update.id, position };
  } catch (error) {
    if (span !== undefined) endSpan(span, error);
    throw refusedByLog(error);
  }
}

/** The log refused to hold more (OPAL_MESH_SNAPSHOT_MAX_BYTES): 507 on REST, RESOURCE_EXHAUSTED on Connect, the reason as the log gave it. */
function refusedByLog(error: unknown): unknown {
  if (error instanceof ConnectError && error.code === Code.ResourceExhausted) return new HttpError(507, error.rawMessage);
  return error;
}

async function publishAlone(broadcaster: Client<typeof BroadcasterService>, event: Event, signal?: AbortSignal): Promise<bigint> {
  const response = await broadcaster.publish({ events: [event] }, { signal });
  const position = response.positions[0];
  if (position === undefined) throw new Error("the broadcaster returned no position");
  return position;
}

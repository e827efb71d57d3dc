/**
 * Messages on the events topic. The broadcaster writes protobuf `Event`s; other systems
 * may write either that, or OPAL's DataUpdate JSON. Positions are never in the message:
 * a message's position is its offset + 1.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { type Event, EventSchema } from "../../gen/opal/mesh/v1/event_pb.js";
import { parseDataUpdate } from "../common/data-entries.js";

export const PROTOBUF_CONTENT_TYPE = "application/x-protobuf; messageType=opal.mesh.v1.Event";

export interface KafkaRecord {
  offset: string;
  timestamp: string;
  value: Buffer | null;
  headers?: Record<string, Buffer | string | Array<Buffer | string> | undefined>;
}

export class MalformedMessageError extends Error {
  override readonly name = "MalformedMessageError";
}

export function encodeEvent(event: Event): { value: Buffer; headers: Record<string, string> } {
  const copy = create(EventSchema, { ...event, position: 0n, publishedAtUnixMs: 0n });
  const headers: Record<string, string> = { "content-type": PROTOBUF_CONTENT_TYPE };
  if (event.traceContext?.traceparent) headers.traceparent = event.traceContext.traceparent;
  if (event.traceContext?.tracestate) headers.tracestate = event.traceContext.tracestate;
  return { value: Buffer.from(toBinary(EventSchema, copy)), headers };
}

function header(record: KafkaRecord, name: string): string | undefined {
  const value = record.headers?.[name];
  const first = Array.isArray(value) ? value[0] : value;
  return first === undefined ? undefined : first.toString();
}

/** The event a record holds, with its position; throws MalformedMessageError otherwise. */
export function decodeRecord(record: KafkaRecord): Event {
  const value = record.value;
  if (value === null || value.length === 0) throw new MalformedMessageError("empty message");
  const position = BigInt(record.offset) + 1n;
  const contentType = header(record, "content-type") ?? "";
  let event: Event;
  if (contentType.includes("protobuf") || (contentType === "" && value[0] !== 0x7b /* { */)) {
    try {
      event = fromBinary(EventSchema, value);
    } catch (error) {
      throw new MalformedMessageError(`not a protobuf Event: ${(error as Error).message}`);
    }
    if (event.payload.case === undefined) throw new MalformedMessageError("a protobuf Event without payload");
  } else {
    let json: unknown;
    try {
      json = JSON.parse(value.toString("utf8"));
    } catch (error) {
      throw new MalformedMessageError(`not JSON: ${(error as Error).message}`);
    }
    let update;
    try {
      update = parseDataUpdate(json);
    } catch (error) {
      throw new MalformedMessageError(`not an OPAL DataUpdate: ${(error as Error).message}`);
    }
    event = create(EventSchema, { topics: [...new Set(update.entries.flatMap((entry) => entry.topics))], payload: { case: "dataUpdate", value: update } });
  }
  // Every consumer derives the same id for an update its producer left without one.
  if (event.payload.case === "dataUpdate" && event.payload.value.id === "") event.payload.value.id = `kafka-${record.offset}`;
  if (event.topics.length === 0 && event.payload.case === "dataUpdate") event.topics = [...new Set(event.payload.value.entries.flatMap((entry) => entry.topics))];
  if (event.topics.length === 0) throw new MalformedMessageError("an event addressed to no topic");
  event.position = position;
  event.publishedAtUnixMs = BigInt(record.timestamp);
  const traceparent = header(record, "traceparent");
  if (traceparent !== undefined && event.traceContext === undefined) event.traceContext = { $typeName: "opal.mesh.v1.TraceContext", traceparent, tracestate: header(record, "tracestate") ?? "" };
  return event;
}

/** Keeps positions contiguous where a malformed message sits: an event addressed to nobody. */
export function placeholder(record: KafkaRecord): Event {
  return create(EventSchema, { position: BigInt(record.offset) + 1n, publishedAtUnixMs: BigInt(record.timestamp), topics: [] });
}

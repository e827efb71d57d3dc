/**
 * The distributor's side of the stream protocol as bytes: each ConnectResponse a client
 * receives (Welcome, events, Resync, pongs), serialized once and shared by every session
 * it goes to, and an event as a client of one scope may see it.
 */
import { clone, create, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { ConnectResponseSchema, type SnapshotPartSchema } from "../../gen/opal/mesh/v1/distributor_pb.js";
import { type Event, EventSchema } from "../../gen/opal/mesh/v1/event_pb.js";
import { DEFAULT_SCOPE, scopeOfTopic, unscopeTopic } from "../common/scopes/scoped-topics.js";

/** An event with its frame as a default-scope client receives it (what replays send). */
export interface FramedEvent {
  event: Event;
  frame: Uint8Array;
}

export function encodeEvent(event: Event): Uint8Array {
  return toBinary(ConnectResponseSchema, create(ConnectResponseSchema, { message: { case: "event", value: event } }));
}

/**
 * An event as a client of `scope` receives it: only that scope's topics and entries, with
 * plain topic names. An event built (e.g. straight into Kafka) with several scopes' topics
 * never carries one tenant's entries to another's client.
 */
export function eventForScope(event: Event, scope: string): Event {
  const inScope = (topic: string): boolean => scopeOfTopic(topic) === scope;
  if (scope === DEFAULT_SCOPE && event.topics.every(inScope)) return event;
  const copy = clone(EventSchema, event);
  copy.topics = event.topics.filter(inScope).map(unscopeTopic);
  if (copy.payload.case === "dataUpdate") {
    const update = copy.payload.value;
    update.entries = update.entries.filter((entry) => entry.topics.some(inScope));
    for (const entry of update.entries) entry.topics = entry.topics.filter(inScope).map(unscopeTopic);
  }
  return copy;
}

export function encodeEventFor(event: Event, scope: string): Uint8Array {
  return encodeEvent(eventForScope(event, scope));
}

export function framed(event: Event, frame: Uint8Array = encodeEventFor(event, DEFAULT_SCOPE)): FramedEvent {
  return { event, frame };
}

/** `snapshotFollows`: the snapshot at `headPosition` comes next (a client that accepts one). */
export function encodeResync(reason: string, headPosition: bigint, snapshotFollows = false): Uint8Array {
  return toBinary(ConnectResponseSchema, create(ConnectResponseSchema, { message: { case: "resync", value: { reason, headPosition, snapshotFollows } } }));
}

export function encodeWelcome(sessionId: string, headPosition: bigint, logId: string, snapshotFollows = false): Uint8Array {
  return toBinary(ConnectResponseSchema, create(ConnectResponseSchema, { message: { case: "welcome", value: { sessionId, headPosition, logId, snapshotFollows, cumulativeAcks: true } } }));
}

/** One part of the snapshot a client writes with its baseline (snapshot-sender.ts makes them). */
export function encodeSnapshotPart(part: MessageInitShape<typeof SnapshotPartSchema>): Uint8Array {
  return toBinary(ConnectResponseSchema, create(ConnectResponseSchema, { message: { case: "snapshot", value: part } }));
}

export function encodePong(nonce: bigint): Uint8Array {
  return toBinary(ConnectResponseSchema, create(ConnectResponseSchema, { message: { case: "pong", value: { nonce } } }));
}

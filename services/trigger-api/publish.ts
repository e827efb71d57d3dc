/**
 * Turns a validated DataUpdate into a log event. Shared by the Connect route and OPAL's
 * REST route so both assign ids and address topics the same way.
 */
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import type { BroadcasterService } from "../../gen/opal/mesh/v1/broadcaster_pb.js";
import type { DataUpdate } from "../../gen/opal/mesh/v1/data_pb.js";
import { EventSchema } from "../../gen/opal/mesh/v1/event_pb.js";

export interface Published {
  id: string;
  position: bigint;
}

export async function publishDataUpdate(broadcaster: Client<typeof BroadcasterService>, update: DataUpdate, signal?: AbortSignal): Promise<Published> {
  // OPAL's clients assign a uuid4 hex when the publisher gives none; we do it once, here,
  // so every client and every status report agree on the id.
  if (update.id === "") update.id = randomUUID().replaceAll("-", "");
  // A multi-topic update is sent whole to the union of its topics; clients filter entries
  // (OPAL #271), so one position covers the whole update.
  const topics = [...new Set(update.entries.flatMap((entry) => entry.topics))];
  const event = create(EventSchema, { topics, payload: { case: "dataUpdate", value: update } });
  const response = await broadcaster.publish({ events: [event] }, { signal });
  const position = response.positions[0];
  if (position === undefined) throw new Error("the broadcaster returned no position");
  return { id: update.id, position };
}

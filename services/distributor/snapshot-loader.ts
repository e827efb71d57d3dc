/**
 * The broadcaster's snapshot of the log, read whole for the fan-out to start from: its
 * subscription then follows after the snapshot's position, so the fan-out's own fold is
 * the log's from the first event on, whenever this distributor started.
 */
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import type { BroadcasterService } from "../../gen/opal/mesh/v1/broadcaster_pb.js";
import type { SnapshotExport } from "../common/snapshot/types.js";

export interface LoadedSnapshot extends SnapshotExport {
  /** The log the position belongs to. */
  logId: string;
  /** Why the broadcaster's snapshot misses events, if it does. */
  incomplete: string | undefined;
}

/** undefined when the broadcaster predates snapshots (UNIMPLEMENTED): the fan-out starts at its head, as before. */
export async function readSnapshot(broadcaster: Client<typeof BroadcasterService>, signal: AbortSignal): Promise<LoadedSnapshot | undefined> {
  let loaded: LoadedSnapshot | undefined;
  try {
    for await (const message of broadcaster.readSnapshot({}, { signal })) {
      if (message.message.case === "header") {
        const header = message.message.value;
        loaded = { position: header.position, scopes: header.scopes, items: [], logId: header.logId, incomplete: header.incomplete === "" ? undefined : header.incomplete };
      } else if (message.message.case === "items") {
        if (loaded === undefined) throw new Error("the broadcaster sent snapshot items before its header");
        loaded.items.push(...message.message.value.items);
      }
    }
  } catch (error) {
    if (error instanceof ConnectError && error.code === Code.Unimplemented) return undefined;
    throw error;
  }
  if (loaded === undefined) throw new Error("the broadcaster's snapshot had no header");
  return loaded;
}

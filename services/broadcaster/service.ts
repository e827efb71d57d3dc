/**
 * BroadcasterService over a log backend. The service validates and streams; the backend
 * orders and retains (in memory here; Kafka in the distributed deployment).
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import {
  type BroadcasterService,
  HeadResponseSchema,
  type PublishRequest,
  PublishResponseSchema,
  type ReadSnapshotResponse,
  ReadSnapshotResponseSchema,
  type SubscribeRequest,
  type SubscribeResponse,
  SubscribeResponseSchema,
} from "../../gen/opal/mesh/v1/broadcaster_pb.js";
import type { Event } from "../../gen/opal/mesh/v1/event_pb.js";
import { entrySize, inParts } from "../common/snapshot/chunks.js";
import { anyTopicCovered } from "../common/topics.js";
import { type EventLog, LogTruncatedError } from "./event-log.js";
import { hopClock } from "../common/telemetry/hop-clock.js";

export interface BroadcasterServiceOptions {
  /** OPAL_MESH_SNAPSHOT_MAX_BYTES: publishes of inline data that would take the snapshot past it are refused. */
  snapshotMaxBytes?: number;
}

export function createBroadcasterService(log: EventLog, options: BroadcasterServiceOptions = {}): ServiceImpl<typeof BroadcasterService> {
  return {
    async publish(request: PublishRequest) {
      for (const [index, event] of request.events.entries()) {
        if (event.payload.case === undefined) {
          throw new ConnectError(`events[${index}]: has no payload`, Code.InvalidArgument);
        }
        if (event.topics.length === 0) {
          throw new ConnectError(`events[${index}].topics: must name at least one topic`, Code.InvalidArgument);
        }
      }
      checkSnapshotLimit(log, request.events, options.snapshotMaxBytes);
      const positions = await log.append(request.events);
      if (hopClock.enabled) for (const event of request.events) if (event.payload.case === "dataUpdate") hopClock.mark("broadcaster.appended", event.payload.value.id);
      return create(PublishResponseSchema, { positions });
    },

    async *subscribe(request: SubscribeRequest, context: HandlerContext): AsyncGenerator<SubscribeResponse> {
      const { headPosition, firstRetainedPosition, logId } = log.head();
      const after = request.fromHead ? headPosition : request.afterPosition;
      // A position this log never reached belongs to another log: as lost as a dropped one.
      const truncated = after > headPosition || after + 1n < firstRetainedPosition;
      yield create(SubscribeResponseSchema, {
        message: { case: "started", value: { headPosition, truncated, firstRetainedPosition, logId } },
      });
      // A truncated subscriber must resync (load its baseline), after which only events
      // newer than the head matter: replaying older ones would regress the baseline.
      const start = truncated ? headPosition : after;
      try {
        for await (const event of log.read(start, context.signal)) {
          // A malformed message on Kafka keeps its position but holds no event.
          if (event.payload.case === undefined) continue;
          if (request.topics.length > 0 && !anyTopicCovered(request.topics, event.topics)) continue;
          yield create(SubscribeResponseSchema, { message: { case: "event", value: event } });
        }
      } catch (error) {
        if (error instanceof LogTruncatedError) {
          throw new ConnectError(`subscriber fell behind the log's retention: ${error.message}`, Code.DataLoss);
        }
        throw error;
      }
    },

    head() {
      return create(HeadResponseSchema, log.head());
    },

    /** A consistent copy taken at once, then sent in parts: appends meanwhile are after its position. */
    async *readSnapshot(): AsyncGenerator<ReadSnapshotResponse> {
      const exported = log.snapshot.export();
      const { entries, bytes } = log.snapshot.stats;
      const incomplete = log.snapshotProblem() ?? "";
      yield create(ReadSnapshotResponseSchema, {
        message: { case: "header", value: { position: exported.position, logId: log.head().logId, scopes: exported.scopes, entries: BigInt(entries), bytes: BigInt(bytes), incomplete } },
      });
      for (const items of inParts(exported.items, (item) => (item.entry === undefined ? 64 : entrySize(item.entry)))) {
        yield create(ReadSnapshotResponseSchema, { message: { case: "items", value: { items } } });
      }
    },
  };
}

/**
 * Inline data is kept in the snapshot for as long as nothing overwrites it: past the limit a
 * publish that adds inline data is refused (the caller sees why), never folded in and then
 * lost. Deletes and URL entries, which add next to nothing, still go through.
 */
function checkSnapshotLimit(log: EventLog, events: readonly Event[], maxBytes: number | undefined): void {
  if (maxBytes === undefined) return;
  const addsInlineData = events.some((event) => event.payload.case === "dataUpdate" && event.payload.value.entries.some((entry) => entry.dataJson !== undefined && entry.dataJson.byteLength > 0));
  if (!addsInlineData) return;
  const held = log.snapshot.stats.bytes;
  const growth = log.snapshot.growthOf(events);
  if (held + growth > maxBytes) {
    throw new ConnectError(
      `the log's snapshot holds ${held} bytes of data and this update could add ${growth}, over OPAL_MESH_SNAPSHOT_MAX_BYTES (${maxBytes}); overwrite or delete data, or raise the limit`,
      Code.ResourceExhausted,
    );
  }
}

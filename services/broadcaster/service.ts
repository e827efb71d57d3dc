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
  type SubscribeRequest,
  type SubscribeResponse,
  SubscribeResponseSchema,
} from "../../gen/opal/mesh/v1/broadcaster_pb.js";
import { anyTopicCovered } from "../common/topics.js";
import { type EventLog, LogTruncatedError } from "./event-log.js";

export function createBroadcasterService(log: EventLog): ServiceImpl<typeof BroadcasterService> {
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
      return create(PublishResponseSchema, { positions: await log.append(request.events) });
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
  };
}

/**
 * TriggerService: the Connect/gRPC way to publish, with the same validation as OPAL's REST
 * route. Register it with `triggerInterceptors` (span, error mapping, log line; PublishStream
 * does its own per update, since an interceptor sees a stream only as a whole).
 */
import { create, toJson } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import {
  type GetUpdateStatusRequest,
  GetUpdateStatusResponseSchema,
  type WaitForUpdateRequest,
  WaitForUpdateResponseSchema,
  type PublishDataUpdateRequest,
  PublishDataUpdateRequestSchema,
  type PublishStreamRequest,
  PublishDataUpdateResponseSchema,
  type TriggerService,
} from "../../gen/opal/mesh/v1/trigger_pb.js";
import { parseDataUpdate, type UpdateLimits } from "../common/data-entries.js";
import { PRINCIPAL } from "../common/auth/security.js";
import type { Principal } from "../common/auth/tokens.js";
import type { Logger } from "../common/logger.js";
import type { DeliveryStatusReader } from "./delivery-status.js";
import type { Tracing } from "../common/telemetry/tracing.js";
import { publishTraceUnder, SERVER_SPAN } from "./interceptors.js";
import { type EventSink, publishDataUpdate } from "./publish.js";
import { publishStream, type PublishStreamLimits } from "./publish-stream.js";

export interface TriggerServiceOptions {
  /** Where published events go (shared with the REST routes). */
  sink: EventSink;
  delivery: DeliveryStatusReader;
  logger: Logger;
  /** Throws (AuthError) when the caller may not publish to these topics. */
  authorizeTopics: (principal: Principal | undefined, topics: string[]) => Promise<void>;
  updateLimits: UpdateLimits;
  tracing?: Tracing;
  /** The log's name, for spans (OPAL_BROADCAST_CHANNEL_NAME). */
  logName: string;
  /** PublishStream's bounds per stream (publish-stream.ts has the defaults). */
  streamLimits?: Partial<PublishStreamLimits>;
}

export function createTriggerService(options: TriggerServiceOptions): ServiceImpl<typeof TriggerService> {
  return {
    // Span, error mapping and the log line are the interceptors' (interceptors.ts): here only the publish.
    async publishDataUpdate(request: PublishDataUpdateRequest, context: HandlerContext) {
      // Convert once at the edge: the public contract carries natural JSON
      // (google.protobuf.Value); inside the mesh data travels as JSON bytes.
      const json = toJson(PublishDataUpdateRequestSchema, request, { useProtoFieldName: true });
      const update = parseDataUpdate(json, options.updateLimits);
      await options.authorizeTopics(context.values.get(PRINCIPAL), update.entries.flatMap((entry) => entry.topics));
      const trace = publishTraceUnder(options.tracing, context.values.get(SERVER_SPAN), options.logName);
      const published = await publishDataUpdate(options.sink, update, context.signal, trace);
      const delivery = request.wait
        ? await options.delivery.status(published.id, { position: published.position, wait: true, timeoutMs: request.waitTimeoutMs }, context.signal)
        : undefined;
      return create(PublishDataUpdateResponseSchema, { status: "ok", id: published.id, position: published.position, delivery });
    },

    // Each update of the stream is validated, authorized, traced and logged as above (publish-stream.ts).
    publishStream(requests: AsyncIterable<PublishStreamRequest>, context: HandlerContext) {
      return publishStream({ ...options, limits: options.streamLimits }, requests, context);
    },

    async getUpdateStatus(request: GetUpdateStatusRequest, context: HandlerContext) {
      const status = await options.delivery.status(request.updateId, { wait: false }, context.signal);
      if (!status.known) throw new ConnectError(`no distributor knows update ${JSON.stringify(request.updateId)} (unknown, or too old to be remembered)`, Code.NotFound);
      return create(GetUpdateStatusResponseSchema, { status });
    },

    async waitForUpdate(request: WaitForUpdateRequest, context: HandlerContext) {
      const status = await options.delivery.status(request.updateId, { wait: true, timeoutMs: request.timeoutMs }, context.signal);
      if (!status.known) throw new ConnectError(`no distributor knows update ${JSON.stringify(request.updateId)}`, Code.NotFound);
      return create(WaitForUpdateResponseSchema, { status });
    },
  };
}

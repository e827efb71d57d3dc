/** TriggerService: the Connect/gRPC way to publish, with the same validation as OPAL's REST route. */
import { create, toJson } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import {
  type GetUpdateStatusRequest,
  GetUpdateStatusResponseSchema,
  type WaitForUpdateRequest,
  WaitForUpdateResponseSchema,
  type PublishDataUpdateRequest,
  PublishDataUpdateRequestSchema,
  PublishDataUpdateResponseSchema,
  type TriggerService,
} from "../../gen/opal/mesh/v1/trigger_pb.js";
import { parseDataUpdate, type UpdateLimits } from "../common/data-entries.js";
import { toConnectError } from "../common/auth/connect-auth.js";
import { PRINCIPAL } from "../common/auth/security.js";
import { AuthError, type Principal } from "../common/auth/tokens.js";
import type { Logger } from "../common/logger.js";
import { ValidationError } from "../common/validation-error.js";
import type { DeliveryStatusReader } from "./delivery-status.js";
import { endSpan, SpanKind, type Tracing } from "../common/telemetry/tracing.js";
import { type EventSink, publishDataUpdate } from "./publish.js";

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
}

export function createTriggerService(options: TriggerServiceOptions): ServiceImpl<typeof TriggerService> {
  return {
    async publishDataUpdate(request: PublishDataUpdateRequest, context: HandlerContext) {
      // Convert once at the edge: the public contract carries natural JSON
      // (google.protobuf.Value); inside the mesh data travels as JSON bytes.
      const json = toJson(PublishDataUpdateRequestSchema, request, { useProtoFieldName: true });
      let update;
      try {
        update = parseDataUpdate(json, options.updateLimits);
      } catch (error) {
        if (error instanceof ValidationError) throw new ConnectError(error.message, Code.InvalidArgument);
        throw error;
      }
      try {
        await options.authorizeTopics(context.values.get(PRINCIPAL), update.entries.flatMap((entry) => entry.topics));
      } catch (error) {
        if (error instanceof AuthError) throw toConnectError(error);
        throw error;
      }
      const tracing = options.tracing;
      const span = tracing?.enabled === true
        ? tracing.start("opal.mesh.v1.TriggerService/PublishDataUpdate", {
            kind: SpanKind.SERVER,
            parent: tracing.extract({ traceparent: context.requestHeader.get("traceparent") ?? undefined, tracestate: context.requestHeader.get("tracestate") ?? undefined }),
            attributes: { "rpc.system": "connect_rpc", "rpc.service": "opal.mesh.v1.TriggerService", "rpc.method": "PublishDataUpdate" },
          })
        : undefined;
      let published;
      try {
        published = await publishDataUpdate(options.sink, update, context.signal, span === undefined || tracing === undefined ? undefined : { tracing, parent: tracing.under(span), destination: options.logName });
        if (span !== undefined) endSpan(span);
      } catch (error) {
        if (span !== undefined) endSpan(span, error);
        throw error;
      }
      options.logger.info({ updateId: published.id, position: published.position.toString(), entries: update.entries.length }, "data update published");
      const delivery = request.wait
        ? await options.delivery.status(published.id, { position: published.position, wait: true, timeoutMs: request.waitTimeoutMs }, context.signal)
        : undefined;
      return create(PublishDataUpdateResponseSchema, { status: "ok", id: published.id, position: published.position, delivery });
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

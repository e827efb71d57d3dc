/** DistributorService's unary RPCs (the stream itself is served by StreamServer). */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import {
  ClientSessionSchema,
  DiscoverStreamResponseSchema,
  type DistributorService,
  GetDataSourcesConfigResponseSchema,
  type GetDeliveryStatusRequest,
  GetDeliveryStatusResponseSchema,
  GetDistributorStatusResponseSchema,
  ListClientsResponseSchema,
} from "../../gen/opal/mesh/v1/distributor_pb.js";
import { HealthState } from "../../gen/opal/mesh/v1/health_pb.js";
import { type DataSourcesOptions, resolveDataSources } from "./data-sources.js";
import type { DeliveryTracker } from "./delivery-tracker.js";
import type { Fanout } from "./fanout.js";

const DEFAULT_WAIT_MS = 30_000;

export interface DistributorServiceOptions {
  fanout: Fanout;
  delivery: DeliveryTracker;
  dataSources: DataSourcesOptions;
  /** The stream listener's port, known once it is bound. */
  streamPort: () => number;
  streamPublicUrl: string | undefined;
  streamTls: boolean;
}

export function createDistributorService(options: DistributorServiceOptions): ServiceImpl<typeof DistributorService> {
  const { fanout } = options;
  return {
    connect() {
      throw new ConnectError(`the client stream is served by the stream listener on port ${options.streamPort()}; call DiscoverStream`, Code.Unimplemented);
    },

    discoverStream() {
      return create(DiscoverStreamResponseSchema, { port: options.streamPort(), url: options.streamPublicUrl ?? "", tls: options.streamTls });
    },

    getDataSourcesConfig() {
      return create(GetDataSourcesConfigResponseSchema, { config: resolveDataSources(options.dataSources) });
    },

    listClients() {
      return create(ListClientsResponseSchema, {
        clients: fanout.listSessions().map((session) =>
          create(ClientSessionSchema, {
            clientId: session.clientId,
            sessionId: session.sessionId,
            topics: [...session.topics],
            peer: session.peer,
            connectedAtUnixMs: BigInt(session.connectedAt),
            ackedPosition: session.ackedPosition,
            sentPosition: session.sentPosition,
            lastFailedPosition: session.lastFailure?.position ?? 0n,
            lastFailedUpdateId: session.lastFailure?.updateId ?? "",
            lastError: session.lastFailure?.error ?? "",
          }),
        ),
      });
    },

    async getDeliveryStatus(request: GetDeliveryStatusRequest, context: HandlerContext) {
      const status = request.wait
        ? await options.delivery.wait(request.updateId, request.position, request.timeoutMs || DEFAULT_WAIT_MS, context.signal)
        : options.delivery.status(request.updateId);
      return create(GetDeliveryStatusResponseSchema, { status });
    },

    getDistributorStatus() {
      const state = fanout.isSubscribed ? HealthState.OK : HealthState.NOT_READY;
      return create(GetDistributorStatusResponseSchema, {
        health: { component: "distributor", state, message: fanout.isSubscribed ? "subscribed to the log" : "not subscribed to the log yet" },
        headPosition: fanout.head,
        connectedClients: fanout.sessionCount,
      });
    },
  };
}

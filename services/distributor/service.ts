/** DistributorService's unary RPCs (the stream itself is served by StreamServer). */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import {
  ClientProtocol,
  ClientSessionSchema,
  DiscoverStreamResponseSchema,
  type DistributorService,
  type GetDataSourcesConfigRequest,
  GetDataSourcesConfigResponseSchema,
  type GetDeliveryStatusRequest,
  GetDeliveryStatusResponseSchema,
  GetDistributorStatusResponseSchema,
  ListClientsResponseSchema,
} from "../../gen/opal/mesh/v1/distributor_pb.js";
import { HealthState } from "../../gen/opal/mesh/v1/health_pb.js";
import { toConnectError } from "../common/auth/connect-auth.js";
import { PRINCIPAL } from "../common/auth/security.js";
import { AuthError, type Principal } from "../common/auth/tokens.js";
import { DEFAULT_SCOPE, isDefaultScope } from "../common/scopes/scoped-topics.js";
import type { ScopeStore } from "../common/scopes/scope-store.js";
import { type DataSourcesOptions, resolveDataSources } from "./data-sources.js";
import { scopeDataSources, ScopeLookupError } from "./scope-data.js";
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
  /** OPAL_SCOPES: the scope records; undefined when scopes are off. */
  scopes: ScopeStore | undefined;
  /** Throws AuthError when the caller may not use the scope. */
  authorizeScope: (principal: Principal | undefined, scope: string) => Promise<void>;
}

async function authorize(options: DistributorServiceOptions, context: HandlerContext, scope: string): Promise<void> {
  try {
    await options.authorizeScope(context.values.get(PRINCIPAL), scope);
  } catch (error) {
    if (error instanceof AuthError) throw toConnectError(error);
    throw error;
  }
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

    async getDataSourcesConfig(request: GetDataSourcesConfigRequest, context: HandlerContext) {
      if (isDefaultScope(request.scope)) {
        await authorize(options, context, DEFAULT_SCOPE);
        return create(GetDataSourcesConfigResponseSchema, { config: resolveDataSources(options.dataSources) });
      }
      await authorize(options, context, request.scope);
      try {
        return create(GetDataSourcesConfigResponseSchema, { config: scopeDataSources(options.scopes, request.scope) });
      } catch (error) {
        if (error instanceof ScopeLookupError) throw new ConnectError(error.message, error.kind === "disabled" ? Code.FailedPrecondition : Code.NotFound);
        throw error;
      }
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
            protocol: session.protocol === "opal-ws" ? ClientProtocol.OPAL_WEBSOCKET : ClientProtocol.OPAL_MESH,
            confirmsDeliveries: session.confirms,
            labels: { ...session.labels },
            ...(session.lastReport === undefined ? {} : { report: session.lastReport.report }),
          }),
        ),
      });
    },

    async getDeliveryStatus(request: GetDeliveryStatusRequest, context: HandlerContext) {
      const status = request.wait
        ? await options.delivery.wait(request.updateId, request.position, request.timeoutMs || DEFAULT_WAIT_MS, context.signal)
        : request.updateId === "" && request.position > 0n
          ? options.delivery.statusAt(request.position)
          : options.delivery.status(request.updateId);
      return create(GetDeliveryStatusResponseSchema, { status });
    },

    getDistributorStatus() {
      const problem = fanout.subscriptionProblem;
      // Clients get nothing new while the subscription is down; those connected keep what they hold.
      const [state, message] = !fanout.isSubscribed
        ? [HealthState.NOT_READY, "not subscribed to the log yet"]
        : problem !== undefined
          ? [HealthState.WARN, `log subscription lost, resubscribing: ${problem}`]
          : [HealthState.OK, "subscribed to the log"];
      return create(GetDistributorStatusResponseSchema, {
        health: { component: "distributor", state, message },
        headPosition: fanout.head,
        connectedClients: fanout.sessionCount,
      });
    },
  };
}

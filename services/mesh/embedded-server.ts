/**
 * The composition root of the embedded deployment: all four services in one process,
 * talking through in-process Connect transports (the real protocol stack, in memory),
 * with an in-memory log. The only module that knows every service.
 */
import { createClient, createRouterTransport } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { BroadcasterService } from "../../gen/opal/mesh/v1/broadcaster_pb.js";
import { DistributorService } from "../../gen/opal/mesh/v1/distributor_pb.js";
import { HealthState } from "../../gen/opal/mesh/v1/health_pb.js";
import { PolicyService } from "../../gen/opal/mesh/v1/policy_pb.js";
import { TriggerService } from "../../gen/opal/mesh/v1/trigger_pb.js";
import { createBroadcasterService } from "../broadcaster/index.js";
import type { ServerConfig } from "../common/config/server-config.js";
import { type HttpResponse, sendJson } from "../common/http/json-io.js";
import { HttpListener } from "../common/http/listener.js";
import { RestRouter } from "../common/http/rest-router.js";
import type { Component } from "../common/lifecycle.js";
import type { Logger } from "../common/logger.js";
import { BundleCache, createDistributorService, DeliveryTracker, distributorRestRoutes, Fanout, StreamServer } from "../distributor/index.js";
import { createPolicyService, type PolicyWatcher } from "../policy-watcher/index.js";
import { createTriggerService, DeliveryStatusReader, triggerRestRoutes } from "../trigger-api/index.js";
import { createLogBackend, type LogBackend } from "./log-backend.js";
import { createMembership, type KafkaMembership, PeerClients } from "./peers.js";
import { wirePolicyWatcher } from "./policy-wiring.js";

const MAX_BODY_BYTES = 16 * 1024 * 1024;

export class EmbeddedServer implements Component {
  readonly name = "server";
  private readonly http: HttpListener;
  private readonly streamServer: StreamServer;
  private readonly fanout: Fanout;
  private readonly controller = new AbortController();
  private readonly logBackend: LogBackend;
  private readonly membership: KafkaMembership | undefined;
  /** Exposed for tests and benchmarks: bundle builds and cache behaviour. */
  readonly watcher: PolicyWatcher | undefined;
  readonly bundles: BundleCache;

  constructor(
    private readonly config: ServerConfig,
    private readonly logger: Logger,
  ) {
    this.logBackend = createLogBackend(config, logger.child({ service: "broadcaster" }), "opal-mesh-server");
    const logTransport = createRouterTransport((router) => router.service(BroadcasterService, createBroadcasterService(this.logBackend.log)));
    const broadcaster = createClient(BroadcasterService, logTransport);
    const policyWiring = wirePolicyWatcher(config.policy, config.environment, broadcaster, logger.child({ service: "policy-watcher" }), MAX_BODY_BYTES);
    this.watcher = policyWiring.watcher;
    const policy = createClient(PolicyService, createRouterTransport((router) => router.service(PolicyService, createPolicyService(policyWiring.watcher))));
    const bundles = new BundleCache(policy);
    this.bundles = bundles;

    const delivery = new DeliveryTracker({ maxUpdates: 10_000 });
    this.fanout = new Fanout(broadcaster, logger.child({ service: "distributor" }), { onDispatch: (event, addressed) => delivery.dispatched(event, addressed) });
    this.fanout.onEvent((event) => bundles.observe(event));
    this.streamServer = new StreamServer({
      host: config.host,
      port: config.streamPort,
      fanout: this.fanout,
      broadcaster,
      logger: logger.child({ service: "distributor" }),
      maxBufferedFrames: 10_000,
      helloTimeoutMs: 10_000,
      onAck: (clientId, ack) => delivery.acknowledged(clientId, ack),
    });
    const dataSources = { configured: config.dataConfigSources, allDataUrl: config.allDataUrl, allDataTopic: config.allDataTopic };
    const distributorImpl = createDistributorService({
      fanout: this.fanout,
      delivery,
      dataSources,
      streamPort: () => this.streamServer.port,
      streamPublicUrl: config.streamPublicUrl,
    });
    const distributor = createClient(DistributorService, createRouterTransport((router) => router.service(DistributorService, distributorImpl)));
    // With Kafka, other servers' distributors hold other clients: ask them all.
    this.membership = config.broadcast.type === "kafka" ? createMembership(config, config.broadcast, () => this.url, logger) : undefined;
    const peers = new PeerClients();
    const deliveryStatus = new DeliveryStatusReader(() => [
      distributor,
      ...(this.membership?.members("distributor").filter((member) => member.id !== this.membership?.id).map((member) => peers.distributor(member.url)) ?? []),
    ]);

    const rest = new RestRouter().add(
      ...triggerRestRoutes({ broadcaster, delivery: deliveryStatus, logger: logger.child({ service: "trigger-api" }), dataConfigRoute: "/data/config", maxBodyBytes: MAX_BODY_BYTES }),
      ...distributorRestRoutes({ dataSources, dataConfigRoute: "/data/config", allDataRoute: config.allDataRoute, logger: logger.child({ service: "distributor" }) }),
      ...policyWiring.routes,
      { method: "GET", path: "/", handle: (_request, response) => sendJson(response, 200, { status: "ok" }) },
      {
        method: "GET",
        path: "/healthcheck",
        handle: async (_request, response) => {
          const [distributorStatus, policyStatus] = await Promise.all([distributor.getDistributorStatus({}), policy.getSourceStatus({})]);
          const components = [distributorStatus.health, policyStatus.health].filter((health) => health !== undefined);
          const healthy = components.every((health) => health.state === HealthState.OK || health.state === HealthState.WARN);
          sendJson(response, healthy ? 200 : 503, {
            status: healthy ? "ok" : "error",
            components: components.map((health) => ({ component: health.component, state: HealthState[health.state], message: health.message })),
            head_position: Number(distributorStatus.headPosition),
            connected_clients: distributorStatus.connectedClients,
          });
        },
      },
    );
    const connectHandler = connectNodeAdapter({
      routes: (router) => {
        router.service(TriggerService, createTriggerService({ broadcaster, delivery: deliveryStatus, logger: logger.child({ service: "trigger-api" }) }));
        router.service(DistributorService, distributorImpl);
        router.service(PolicyService, bundles.service());
      },
      readMaxBytes: MAX_BODY_BYTES,
      fallback: (request, nodeResponse) => {
        // connect-node's response type is a structural variant of node's own.
        const response = nodeResponse as HttpResponse;
        if (!rest.handle(request, response)) sendJson(response, 404, { detail: "Not Found" });
      },
    });
    this.http = new HttpListener({ host: config.host, port: config.port, handler: connectHandler });
  }

  get port(): number {
    return this.http.port;
  }

  get streamPort(): number {
    return this.streamServer.port;
  }

  get url(): string {
    const host = this.config.host === "0.0.0.0" || this.config.host === "::" ? "127.0.0.1" : this.config.host;
    return `http://${host}:${this.port}`;
  }

  async start(signal: AbortSignal): Promise<void> {
    signal.addEventListener("abort", () => this.controller.abort(), { once: true });
    await this.logBackend.start(this.controller.signal);
    await this.fanout.start(this.controller.signal);
    this.watcher?.start(this.controller.signal);
    await this.streamServer.start();
    await this.http.start();
    await this.membership?.start();
    this.logger.info({ url: this.url, streamPort: this.streamPort, log: this.logBackend.describe() }, "opal-mesh server listening (all in one: trigger-api, broadcaster, policy-watcher, distributor)");
  }

  async stop(): Promise<void> {
    this.controller.abort();
    await this.membership?.stop();
    await this.http.stop();
    await this.streamServer.stop();
    await this.fanout.stopped();
    await this.logBackend.stop();
  }
}

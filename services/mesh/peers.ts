/** Reaching other processes of the deployment: membership through Kafka, and Connect clients by URL. */
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import type { SASLOptions } from "kafkajs";
import { DistributorService } from "../../gen/opal/mesh/v1/distributor_pb.js";
import type { KafkaBroadcastConfig } from "../common/config/broadcast-config.js";
import type { ServerConfig } from "../common/config/server-config.js";
import type { Logger } from "../common/logger.js";
import { KafkaMembership } from "./membership.js";

export { KafkaMembership };

/** Every process announces itself on `<events topic>-members`. */
export function createMembership(config: ServerConfig, broadcast: KafkaBroadcastConfig, url: () => string, logger: Logger): KafkaMembership {
  return new KafkaMembership({
    client: { clientId: "opal-mesh-membership", brokers: broadcast.brokers, ssl: broadcast.ssl, ...(broadcast.sasl === undefined ? {} : { sasl: broadcast.sasl as SASLOptions }) },
    topic: `${broadcast.topic}-members`,
    get self() {
      return { role: "distributor", url: config.advertisedUrl ?? url() };
    },
    logger: logger.child({ component: "membership" }),
  });
}

/** One Connect client per peer URL, kept. */
export class PeerClients {
  private readonly distributors = new Map<string, Client<typeof DistributorService>>();

  distributor(url: string): Client<typeof DistributorService> {
    let client = this.distributors.get(url);
    if (client === undefined) {
      client = createClient(DistributorService, createConnectTransport({ baseUrl: url, httpVersion: "1.1" }));
      this.distributors.set(url, client);
    }
    return client;
  }
}

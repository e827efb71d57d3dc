/** Reaching other processes of the deployment: membership through Kafka, and Connect clients by URL. */
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import type { KafkaConfig, SASLOptions } from "kafkajs";
import { DistributorService } from "../../gen/opal/mesh/v1/distributor_pb.js";
import type { Security } from "../common/auth/security.js";
import type { ClientTls } from "../common/config/tls-config.js";
import type { KafkaBroadcastConfig } from "../common/config/broadcast-config.js";
import type { Logger } from "../common/logger.js";
import { KafkaMembership } from "../common/kafka/membership.js";

export { KafkaMembership };

/** Every process announces its roles and URL on `<events topic>-members`. */
export function createMembership(broadcast: KafkaBroadcastConfig, self: () => { roles: string[]; url: string } | undefined, logger: Logger): KafkaMembership {
  return new KafkaMembership({
    client: kafkaClientConfig(broadcast, "opal-mesh-membership"),
    topic: `${broadcast.topic}-members`,
    self,
    logger: logger.child({ component: "membership" }),
  });
}

export function kafkaClientConfig(broadcast: KafkaBroadcastConfig, clientId: string): Omit<KafkaConfig, "logLevel" | "logCreator"> {
  return { clientId, brokers: broadcast.brokers, ssl: broadcast.ssl, ...(broadcast.sasl === undefined ? {} : { sasl: broadcast.sasl as SASLOptions }) };
}

/** One Connect client per peer URL, kept; calls carry this process's service token. */
export class PeerClients {
  private readonly distributors = new Map<string, Client<typeof DistributorService>>();

  constructor(
    private readonly security: Security,
    private readonly tls?: ClientTls,
  ) {}

  distributor(url: string): Client<typeof DistributorService> {
    let client = this.distributors.get(url);
    if (client === undefined) {
      client = createClient(
        DistributorService,
        createConnectTransport({ baseUrl: url, httpVersion: "1.1", interceptors: [this.security.serviceInterceptor()], nodeOptions: { ca: this.tls?.ca, cert: this.tls?.cert, key: this.tls?.key } }),
      );
      this.distributors.set(url, client);
    }
    return client;
  }
}

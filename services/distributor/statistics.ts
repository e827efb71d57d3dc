/**
 * OPAL's introspection routes, in OPAL's shapes: `/statistics` (ServerStats), `/stats`
 * (ServerStatsBrief) and `/pubsub_client_info` (the ClientTracker map). OPAL keeps a
 * separate register, synced between servers by messages, which keeps ghosts (#665); here
 * every answer is read from the live sessions — this distributor's, and for the fleet
 * view its peers' (ListClients) — so a client that left is gone at once.
 *
 * OPAL clients (OPAL's websocket pub/sub at /ws) are listed beside opal-mesh's own, each
 * channel and client marked with a `protocol` ("opal" or "opal-mesh") and whether it
 * `confirms_deliveries` (an OPAL client only once it sends update reports), and its
 * `labels` (OPAL_MESH_CLIENT_LABELS; none for OPAL clients): keys OPAL's
 * shapes do not have, which OPAL's models (pydantic, extra keys ignored) and tools skip.
 */
import type { Client } from "@connectrpc/connect";
import { ClientProtocol, type DistributorService } from "../../gen/opal/mesh/v1/distributor_pb.js";
import { sendJson } from "../common/http/json-io.js";
import type { RestRoute } from "../common/http/rest-router.js";
import type { Logger } from "../common/logger.js";
import { isScopedTopic, scopeNoticeTopic, scopeOfTopic } from "../common/scopes/scoped-topics.js";
import type { ClientSession } from "./session.js";

/** One client stream, on this distributor or on a peer. */
export interface ConnectedStream {
  clientId: string;
  sessionId: string;
  topics: readonly string[];
  /** gRPC's peer string: "127.0.0.1:50123". */
  peer: string;
  connectedAtMs: number;
  /** "opal": an unmodified OPAL client on /ws (each of its two connections is a stream). */
  protocol: StreamProtocol;
  /** Whether what it applied is confirmed (ACKs; an OPAL client's update reports). */
  confirms: boolean;
  /** From its Hello (OPAL_MESH_CLIENT_LABELS); empty for OPAL clients and peers that predate labels. */
  labels: Readonly<Record<string, string>>;
}

export type StreamProtocol = "opal" | "opal-mesh";

/** Another distributor of the fleet (known through Kafka membership). */
export interface PeerDistributor {
  id: string;
  listStreams(signal: AbortSignal): Promise<ConnectedStream[]>;
}

export function localStream(session: Pick<ClientSession, "clientId" | "sessionId" | "topics" | "peer" | "connectedAt" | "protocol" | "confirms" | "labels">): ConnectedStream {
  return {
    clientId: session.clientId,
    sessionId: session.sessionId,
    topics: session.topics,
    peer: session.peer,
    connectedAtMs: session.connectedAt,
    protocol: session.protocol === "opal-ws" ? "opal" : "opal-mesh",
    confirms: session.confirms,
    labels: session.labels,
  };
}

/** A peer's ListClients entry; a peer from before OPAL's websocket lists only opal-mesh clients (UNSPECIFIED), which confirm. */
export function peerProtocol(protocol: ClientProtocol, confirmsDeliveries: boolean): Pick<ConnectedStream, "protocol" | "confirms"> {
  if (protocol === ClientProtocol.OPAL_WEBSOCKET) return { protocol: "opal", confirms: confirmsDeliveries };
  return { protocol: "opal-mesh", confirms: protocol === ClientProtocol.UNSPECIFIED || confirmsDeliveries };
}

/** A peer distributor reached over Connect (its ListClients). */
export function remoteDistributor(id: string, client: Client<typeof DistributorService>): PeerDistributor {
  return {
    id,
    async listStreams(signal) {
      const { clients } = await client.listClients({}, { signal });
      return clients.map((session) => ({
        clientId: session.clientId,
        sessionId: session.sessionId,
        topics: session.topics,
        peer: session.peer,
        connectedAtMs: Number(session.connectedAtUnixMs),
        ...peerProtocol(session.protocol, session.confirmsDeliveries),
        labels: session.labels,
      }));
    },
  };
}

export interface StatisticsOptions {
  /** This server's id in `servers` (its membership id with Kafka). */
  serverId: string;
  startedAt: Date;
  version: string;
  /** This distributor's streams. */
  streams: () => ConnectedStream[];
  /** The other distributors; none without Kafka. */
  peers?: () => PeerDistributor[];
  /** How long a peer may take to list its clients before it is left out. */
  peerTimeoutMs?: number;
  logger: Logger;
}

/** OPAL's ChannelStats, and how the channel's client is connected. */
export interface ChannelStats {
  rpc_id: string;
  client_id: string;
  topics: string[];
  protocol: StreamProtocol;
  confirms_deliveries: boolean;
  /** Ours: the client's labels (OPAL_MESH_CLIENT_LABELS); empty for OPAL clients. */
  labels: Record<string, string>;
}

/** OPAL's ServerStats. */
export interface ServerStats {
  uptime: string;
  version: string;
  clients: Record<string, ChannelStats[]>;
  servers: string[];
}

/** OPAL's ServerStatsBrief. */
export interface ServerStatsBrief {
  uptime: string;
  version: string;
  client_count: number;
  server_count: number;
}

/** OPAL's ClientInfo (fastapi_websocket_pubsub's tracker, as OPAL serves it). */
export interface ClientInfo {
  client_id: string;
  source_host: string | null;
  source_port: number | null;
  /** Seconds since the epoch (Python's time.time()). */
  connect_time: number;
  subscribed_topics: string[];
  /** Open streams of this client id. */
  refcount: number;
  query_params: Record<string, string>;
  /** Ours: "opal" for an OPAL client on /ws; with several streams, the first one's. */
  protocol: StreamProtocol;
  /** Ours: whether every stream of this client id confirms what it applied. */
  confirms_deliveries: boolean;
  /** Ours: the labels of its first stream (OPAL_MESH_CLIENT_LABELS); empty for OPAL clients. */
  labels: Record<string, string>;
}

/** The topics a client asked for, as the log names them (a scope's notice topic is ours, not the client's). */
function subscribedTopics(topics: readonly string[]): string[] {
  return topics.filter((topic) => !(isScopedTopic(topic) && topic === scopeNoticeTopic(scopeOfTopic(topic))));
}

/** Host and port of a gRPC peer ("127.0.0.1:50123", "::1:50123", "[::1]:50123"); nulls when it is not an address. */
export function parsePeer(peer: string): { host: string | null; port: number | null } {
  const address = peer.replace(/^ipv[46]:/, "");
  const colon = address.lastIndexOf(":");
  const port = address.slice(colon + 1);
  if (colon <= 0 || !/^\d{1,5}$/.test(port)) return { host: null, port: null };
  return { host: address.slice(0, colon).replace(/^\[(.*)\]$/, "$1"), port: Number(port) };
}

export function serverStats(input: { startedAt: Date; version: string; streams: readonly ConnectedStream[]; servers: readonly string[] }): ServerStats {
  const clients: Record<string, ChannelStats[]> = {};
  for (const stream of input.streams) {
    (clients[stream.clientId] ??= []).push({
      rpc_id: stream.sessionId,
      client_id: stream.clientId,
      topics: subscribedTopics(stream.topics),
      protocol: stream.protocol,
      confirms_deliveries: stream.confirms,
      labels: { ...stream.labels },
    });
  }
  return { uptime: input.startedAt.toISOString(), version: input.version, clients, servers: [...new Set(input.servers)] };
}

export function serverStatsBrief(stats: ServerStats): ServerStatsBrief {
  return { uptime: stats.uptime, version: stats.version, client_count: Object.keys(stats.clients).length, server_count: stats.servers.length };
}

/** One entry per client id, as OPAL's ClientTracker (which counts a client's connections in refcount). */
export function pubsubClientInfo(streams: readonly ConnectedStream[]): Record<string, ClientInfo> {
  const info: Record<string, ClientInfo> = {};
  for (const stream of [...streams].sort((a, b) => a.connectedAtMs - b.connectedAtMs)) {
    const known = info[stream.clientId];
    if (known !== undefined) {
      known.refcount++;
      known.confirms_deliveries &&= stream.confirms;
      known.subscribed_topics = [...new Set([...known.subscribed_topics, ...subscribedTopics(stream.topics)])];
      continue;
    }
    const { host, port } = parsePeer(stream.peer);
    info[stream.clientId] = {
      client_id: stream.clientId,
      source_host: host,
      source_port: port,
      connect_time: stream.connectedAtMs / 1000,
      subscribed_topics: [...new Set(subscribedTopics(stream.topics))],
      refcount: 1,
      query_params: {},
      protocol: stream.protocol,
      confirms_deliveries: stream.confirms,
      labels: { ...stream.labels },
    };
  }
  return info;
}

/** Every stream of the fleet: ours, and each peer's that answers in time (a silent peer is left out, and logged). */
async function fleetStreams(options: StatisticsOptions): Promise<{ streams: ConnectedStream[]; servers: string[] }> {
  const peers = options.peers?.() ?? [];
  const signal = AbortSignal.timeout(options.peerTimeoutMs ?? 2_000);
  const answers = await Promise.all(
    peers.map((peer) =>
      // Partial statistics beat none: a silent peer is logged and its streams left out (it is still listed among the servers).
      peer.listStreams(signal).catch((error: unknown) => {
        options.logger.warn({ peer: peer.id, err: (error as Error).message }, "statistics: a peer distributor did not list its clients");
        return [];
      }),
    ),
  );
  return { streams: [...options.streams(), ...answers.flat()], servers: [options.serverId, ...peers.map((peer) => peer.id)] };
}

/**
 * The routes, behind a datasource or service token as in OPAL (any valid JWT there).
 * OPAL answers 501 unless OPAL_STATISTICS_ENABLED; the sessions are here anyway, so they
 * are always served.
 */
export function statisticsRoutes(options: StatisticsOptions): RestRoute[] {
  const stats = async (): Promise<ServerStats> => {
    const { streams, servers } = await fleetStreams(options);
    return serverStats({ startedAt: options.startedAt, version: options.version, streams, servers });
  };
  return [
    { method: "GET", path: "/statistics", auth: ["datasource", "service"], handle: async (_request, response) => sendJson(response, 200, await stats()) },
    { method: "GET", path: "/stats", auth: ["datasource", "service"], handle: async (_request, response) => sendJson(response, 200, serverStatsBrief(await stats())) },
    // OPAL's tracker is per server: only this distributor's clients.
    { method: "GET", path: "/pubsub_client_info", auth: ["datasource", "service"], handle: (_request, response) => sendJson(response, 200, pubsubClientInfo(options.streams())) },
  ];
}

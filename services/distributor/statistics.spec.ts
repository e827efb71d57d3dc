import { test } from "node:test";
import assert from "node:assert/strict";
import { ClientProtocol } from "../../gen/opal/mesh/v1/distributor_pb.js";
import { type ConnectedStream, localStream, parsePeer, peerProtocol, pubsubClientInfo, serverStats, serverStatsBrief } from "./statistics.js";

function stream(clientId: string, sessionId: string, topics: string[], connectedAtMs = 1_700_000_000_000, peer = "127.0.0.1:50123"): ConnectedStream {
  return { clientId, sessionId, topics, peer, connectedAtMs, protocol: "opal-mesh", confirms: true, labels: {} };
}

/** One of an OPAL client's two websocket connections (data updater or policy updater). */
function opalStream(peer: string, sessionId: string, topics: string[], confirms = false, connectedAtMs = 1_700_000_000_000): ConnectedStream {
  return { clientId: `opal:${peer}`, sessionId, topics, peer, connectedAtMs, protocol: "opal", confirms, labels: {} };
}

const MESH = { protocol: "opal-mesh", confirms_deliveries: true, labels: {} } as const;

test("parsePeer", async (t) => {
  const cases: Array<[string, string, { host: string | null; port: number | null }]> = [
    ["IPv4", "127.0.0.1:50123", { host: "127.0.0.1", port: 50123 }],
    ["IPv6 as grpc-js gives it", "::1:50123", { host: "::1", port: 50123 }],
    ["IPv4-mapped IPv6", "::ffff:10.0.0.7:4000", { host: "::ffff:10.0.0.7", port: 4000 }],
    ["bracketed IPv6", "[::1]:50123", { host: "::1", port: 50123 }],
    ["scheme-prefixed", "ipv4:10.1.2.3:9", { host: "10.1.2.3", port: 9 }],
    ["unknown", "unknown", { host: null, port: null }],
    ["no port", "10.1.2.3", { host: null, port: null }],
  ];
  for (const [name, peer, expected] of cases) await t.test(name, () => assert.deepEqual(parsePeer(peer), expected));
});

test("serverStats groups channels by client id, in OPAL's shape", () => {
  const stats = serverStats({
    startedAt: new Date("2025-01-02T03:04:05.000Z"),
    version: "1.2.3",
    streams: [stream("a", "s1", ["policy_data", "policy:."]), stream("b", "s2", ["billing"]), stream("a", "s3", ["policy_data"])],
    servers: ["me", "peer", "me"],
  });
  assert.deepEqual(stats, {
    uptime: "2025-01-02T03:04:05.000Z",
    version: "1.2.3",
    clients: {
      a: [
        { rpc_id: "s1", client_id: "a", topics: ["policy_data", "policy:."], ...MESH },
        { rpc_id: "s3", client_id: "a", topics: ["policy_data"], ...MESH },
      ],
      b: [{ rpc_id: "s2", client_id: "b", topics: ["billing"], ...MESH }],
    },
    servers: ["me", "peer"],
  });
  assert.deepEqual(serverStatsBrief(stats), { uptime: stats.uptime, version: "1.2.3", client_count: 2, server_count: 2 });
});

test("a scoped client's topics are listed as the log names them, without the scope's notice topic", () => {
  const stats = serverStats({ startedAt: new Date(0), version: "0", streams: [stream("t", "s", ["acme:data:policy_data", "acme:policy:.", "acme:scope"])], servers: ["me"] });
  assert.deepEqual(stats.clients.t?.[0]?.topics, ["acme:data:policy_data", "acme:policy:."]);
});

test("no streams: no clients", () => {
  const stats = serverStats({ startedAt: new Date(0), version: "0", streams: [], servers: ["me"] });
  assert.deepEqual(stats.clients, {});
  assert.deepEqual(pubsubClientInfo([]), {});
});

test("pubsubClientInfo: one entry per client, its streams counted in refcount", () => {
  const info = pubsubClientInfo([stream("a", "s2", ["x"], 2_000, "10.0.0.2:2"), stream("a", "s1", ["policy_data"], 1_000, "10.0.0.1:1"), stream("b", "s3", ["y", "y"], 3_500)]);
  assert.deepEqual(info, {
    // The earliest stream gives the address and connect time, as OPAL keeps the first.
    a: { client_id: "a", source_host: "10.0.0.1", source_port: 1, connect_time: 1, subscribed_topics: ["policy_data", "x"], refcount: 2, query_params: {}, ...MESH },
    b: { client_id: "b", source_host: "127.0.0.1", source_port: 50123, connect_time: 3.5, subscribed_topics: ["y"], refcount: 1, query_params: {}, ...MESH },
  });
});

test("OPAL clients are listed beside opal-mesh's, marked, each of their connections a channel", () => {
  const streams = [
    stream("mesh-1", "s1", ["policy_data", "policy:."]),
    opalStream("10.0.0.7:4001", "s2", ["policy_data"], true),
    opalStream("10.0.0.7:4002", "s3", ["policy:.", "policy:rbac"]),
  ];
  const stats = serverStats({ startedAt: new Date(0), version: "0", streams, servers: ["me"] });
  assert.deepEqual(stats.clients, {
    "mesh-1": [{ rpc_id: "s1", client_id: "mesh-1", topics: ["policy_data", "policy:."], protocol: "opal-mesh", confirms_deliveries: true, labels: {} }],
    "opal:10.0.0.7:4001": [{ rpc_id: "s2", client_id: "opal:10.0.0.7:4001", topics: ["policy_data"], protocol: "opal", confirms_deliveries: true, labels: {} }],
    "opal:10.0.0.7:4002": [{ rpc_id: "s3", client_id: "opal:10.0.0.7:4002", topics: ["policy:.", "policy:rbac"], protocol: "opal", confirms_deliveries: false, labels: {} }],
  });
  assert.equal(serverStatsBrief(stats).client_count, 3);
  const info = pubsubClientInfo(streams);
  assert.deepEqual(
    Object.values(info).map((client) => [client.client_id, client.protocol, client.confirms_deliveries, client.source_host, client.source_port]),
    [
      ["mesh-1", "opal-mesh", true, "127.0.0.1", 50123],
      ["opal:10.0.0.7:4001", "opal", true, "10.0.0.7", 4001],
      ["opal:10.0.0.7:4002", "opal", false, "10.0.0.7", 4002],
    ],
  );
  // Every key of OPAL's shape is still there, ours after them.
  assert.deepEqual(Object.keys(info["opal:10.0.0.7:4002"] ?? {}), ["client_id", "source_host", "source_port", "connect_time", "subscribed_topics", "refcount", "query_params", "protocol", "confirms_deliveries", "labels"]);
});

test("a client id confirms only when every one of its streams does", () => {
  const info = pubsubClientInfo([stream("a", "s1", ["x"], 1_000), { ...stream("a", "s2", ["y"], 2_000), confirms: false }]);
  assert.equal(info.a?.refcount, 2);
  assert.equal(info.a?.confirms_deliveries, false);
});

test("localStream marks an OPAL session, and whether it confirms yet", () => {
  const session = { clientId: "opal:h:1", sessionId: "0-0-0-0-0" as const, topics: ["policy_data"], peer: "h:1", connectedAt: 5, protocol: "opal-ws" as const, confirms: false, labels: {} };
  assert.deepEqual(localStream(session), { clientId: "opal:h:1", sessionId: "0-0-0-0-0", topics: ["policy_data"], peer: "h:1", connectedAtMs: 5, protocol: "opal", confirms: false, labels: {} });
  assert.deepEqual(localStream({ ...session, protocol: "opal-mesh", confirms: true }).protocol, "opal-mesh");
});

test("a peer's ListClients entry: OPAL's websocket marked; a peer too old to say lists opal-mesh clients, which confirm", () => {
  assert.deepEqual(peerProtocol(ClientProtocol.OPAL_WEBSOCKET, false), { protocol: "opal", confirms: false });
  assert.deepEqual(peerProtocol(ClientProtocol.OPAL_WEBSOCKET, true), { protocol: "opal", confirms: true });
  assert.deepEqual(peerProtocol(ClientProtocol.OPAL_MESH, true), { protocol: "opal-mesh", confirms: true });
  assert.deepEqual(peerProtocol(ClientProtocol.UNSPECIFIED, false), { protocol: "opal-mesh", confirms: true });
});

test("a client's labels are in its /statistics channels and its /pubsub_client_info entry (the first stream's)", () => {
  const streams = [{ ...stream("a", "s1", ["x"], 1_000), labels: { zone: "eu", canary: "true" } }, { ...stream("a", "s2", ["y"], 2_000), labels: { zone: "us" } }, stream("b", "s3", ["x"])];
  const stats = serverStats({ startedAt: new Date(0), version: "0", streams, servers: ["me"] });
  assert.deepEqual(
    stats.clients.a?.map((channel) => channel.labels),
    [{ zone: "eu", canary: "true" }, { zone: "us" }],
  );
  assert.deepEqual(stats.clients.b?.[0]?.labels, {});
  const info = pubsubClientInfo(streams);
  assert.deepEqual(info.a?.labels, { zone: "eu", canary: "true" });
  assert.deepEqual(info.b?.labels, {});
});

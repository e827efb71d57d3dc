import { test } from "node:test";
import assert from "node:assert/strict";
import { type ConnectedStream, parsePeer, pubsubClientInfo, serverStats, serverStatsBrief } from "./statistics.js";

function stream(clientId: string, sessionId: string, topics: string[], connectedAtMs = 1_700_000_000_000, peer = "127.0.0.1:50123"): ConnectedStream {
  return { clientId, sessionId, topics, peer, connectedAtMs };
}

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
        { rpc_id: "s1", client_id: "a", topics: ["policy_data", "policy:."] },
        { rpc_id: "s3", client_id: "a", topics: ["policy_data"] },
      ],
      b: [{ rpc_id: "s2", client_id: "b", topics: ["billing"] }],
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
    a: { client_id: "a", source_host: "10.0.0.1", source_port: 1, connect_time: 1, subscribed_topics: ["policy_data", "x"], refcount: 2, query_params: {} },
    b: { client_id: "b", source_host: "127.0.0.1", source_port: 50123, connect_time: 3.5, subscribed_topics: ["y"], refcount: 1, query_params: {} },
  });
});

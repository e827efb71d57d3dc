import { test } from "node:test";
import assert from "node:assert/strict";
import { Script } from "node:vm";
import { create } from "@bufbuild/protobuf";
import { ClientDeliverySchema, DeliveryState, UpdateStatusSchema } from "../../../gen/opal/mesh/v1/delivery_pb.js";
import { ClientReportSchema } from "../../../gen/opal/mesh/v1/distributor_pb.js";
import type { RecentUpdate } from "../delivery-tracker.js";
import { DASHBOARD_PAGE, DASHBOARD_SCRIPT, DASHBOARD_STYLE } from "./page.js";
import { clientLag, type DashboardInput, dashboardState, type SessionView } from "./state.js";

const STARTED = Date.parse("2026-01-01T00:00:00Z");

function session(clientId: string, fields: Partial<SessionView> = {}): SessionView {
  return {
    clientId,
    sessionId: `0000-${clientId}-0-0-0`,
    scope: "default",
    topics: ["policy_data", "policy:."],
    peer: "127.0.0.1:5000",
    connectedAt: STARTED + 1_000,
    ackedPosition: 10n,
    sentPosition: 10n,
    deliveredPosition: 10n,
    lastFailure: undefined,
    lastReport: undefined,
    protocol: "opal-mesh",
    confirms: true,
    labels: {},
    ...fields,
  };
}

function reported(healthy: boolean, ready: boolean, message = ""): SessionView["lastReport"] {
  return { report: create(ClientReportSchema, { healthy, ready, opaReachable: true, policyHash: "abc", appliedPosition: 10n, message }), receivedAt: STARTED };
}

function update(position: bigint, fields: Partial<RecentUpdate> = {}, deliveries: Array<[string, DeliveryState, string]> = []): RecentUpdate {
  const clients = deliveries.map(([clientId, state, error]) => create(ClientDeliverySchema, { clientId, state, error, latencyMs: 12n }));
  const count = (state: DeliveryState): number => deliveries.filter(([, s]) => s === state).length;
  const status = create(UpdateStatusSchema, {
    updateId: `u${position}`,
    position,
    clients,
    applied: count(DeliveryState.APPLIED),
    failed: count(DeliveryState.FAILED),
    pending: count(DeliveryState.PENDING),
    disconnected: count(DeliveryState.DISCONNECTED),
    unconfirmed: count(DeliveryState.SENT_UNCONFIRMED),
    complete: count(DeliveryState.PENDING) === 0,
    known: true,
    traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
    publishedAtUnixMs: BigInt(STARTED + 5_000),
  });
  return { kind: "data", policyHash: "", reason: "", scopes: ["default"], status, ...fields };
}

function input(fields: Partial<DashboardInput> = {}): DashboardInput {
  return {
    headPosition: 12n,
    logId: "memory:1",
    startedAt: STARTED,
    now: STARTED + 65_400,
    sessions: [],
    updates: [],
    traceUiUrl: undefined,
    canSee: () => true,
    maxClients: 100,
    maxClientsPerUpdate: 100,
    ...fields,
  };
}

test("clientLag() counts only events addressed to the client", async (t) => {
  const cases: Array<[string, Pick<SessionView, "ackedPosition" | "sentPosition" | "deliveredPosition">, bigint, bigint]> = [
    ["caught up", { ackedPosition: 12n, sentPosition: 12n, deliveredPosition: 12n }, 12n, 0n],
    ["the last events were for others", { ackedPosition: 8n, sentPosition: 12n, deliveredPosition: 8n }, 12n, 0n],
    ["an event sent, not yet ACKed", { ackedPosition: 8n, sentPosition: 12n, deliveredPosition: 11n }, 12n, 4n],
    ["fresh, nothing sent since the baseline", { ackedPosition: 0n, sentPosition: 12n, deliveredPosition: 0n }, 12n, 0n],
    ["resuming from far behind", { ackedPosition: 3n, sentPosition: 5n, deliveredPosition: 5n }, 12n, 9n],
    ["skipped events not yet reached", { ackedPosition: 8n, sentPosition: 10n, deliveredPosition: 8n }, 12n, 2n],
  ];
  for (const [name, positions, head, expected] of cases) {
    await t.test(name, () => assert.equal(clientLag(positions, head), expected));
  }
});

test("the server summary", () => {
  const state = dashboardState(
    input({ sessions: [session("a")], traceUiUrl: "http://jaeger/trace/{trace_id}", snapshot: { entries: 7, bytes: 420, incomplete: "position 3 is gone" } }),
  );
  assert.deepEqual(state.server, {
    head_position: 12,
    log_id: "memory:1",
    started_at: "2026-01-01T00:00:00.000Z",
    uptime: 65,
    client_count: 1,
    clients_omitted: 0,
    trace_links: true,
    snapshot_entries: 7,
    snapshot_bytes: 420,
    snapshot_incomplete: "position 3 is gone",
  });
  assert.equal(dashboardState(input()).server.snapshot_incomplete, "", "no snapshot reads as a complete, empty one");
});

test("clients: reported health, positions, lag and the last failure", () => {
  const state = dashboardState(
    input({
      sessions: [
        session("healthy", { lastReport: reported(true, true), ackedPosition: 9n, sentPosition: 12n, deliveredPosition: 12n }),
        session("silent"),
        session("broken", { lastReport: reported(false, true, "data update failed: 500"), lastFailure: { position: 9n, updateId: "u9", error: "source answered 500" } }),
        session("loading", { lastReport: reported(true, false, "loading the baseline data") }),
      ],
    }),
  );
  assert.deepEqual(
    state.clients.map((client) => [client.client_id, client.status, client.lag]),
    [
      ["broken", "unhealthy", 2],
      ["loading", "loading", 2],
      ["silent", "unknown", 2],
      ["healthy", "ok", 3],
    ],
    "trouble first",
  );
  const broken = state.clients[0];
  assert.equal(broken?.last_error, "source answered 500");
  assert.equal(broken?.last_failed_update_id, "u9");
  assert.equal(broken?.message, "data update failed: 500");
  const silent = state.clients[2];
  assert.deepEqual([silent?.healthy, silent?.ready, silent?.opa_reachable, silent?.applied_position], [null, null, null, null]);
  const healthy = state.clients[3];
  assert.deepEqual(
    { ...healthy, session_id: undefined },
    {
      client_id: "healthy",
      session_id: undefined,
      scope: "default",
      topics: ["policy_data", "policy:."],
      peer: "127.0.0.1:5000",
      connected_at: "2026-01-01T00:00:01.000Z",
      acked_position: 9,
      sent_position: 12,
      lag: 3,
      healthy: true,
      ready: true,
      opa_reachable: true,
      policy_hash: "abc",
      applied_position: 10,
      message: "",
      stale: false,
      stale_reason: "",
      last_error: "",
      last_failed_update_id: "",
      status: "ok",
      protocol: "opal-mesh",
      opal_updater: "",
      confirms: true,
      labels: {},
    },
  );
});

test("a scoped client's topics are shown as it named them", () => {
  const state = dashboardState(input({ sessions: [session("tenant", { scope: "acme", topics: ["acme:data:policy_data", "acme:policy:.", "acme:scope"] })] }));
  assert.deepEqual(state.clients[0]?.topics, ["policy_data", "policy:."]);
});

test("updates: counts, clients (failed first), trace link", () => {
  const state = dashboardState(
    input({
      traceUiUrl: "http://jaeger:16686/trace/{trace_id}?uiEmbed=v0",
      updates: [
        update(12n, { reason: "users changed" }, [
          ["b", DeliveryState.APPLIED, ""],
          ["a", DeliveryState.FAILED, "source answered 500"],
          ["c", DeliveryState.PENDING, ""],
        ]),
        update(11n, { kind: "policy", policyHash: "f00d" }),
      ],
    }),
  );
  const [data, policy] = state.updates;
  assert.deepEqual(
    { ...data, clients: undefined },
    {
      update_id: "u12",
      kind: "data",
      policy_hash: "",
      reason: "users changed",
      scope: "default",
      position: 12,
      published_at: "2026-01-01T00:00:05.000Z",
      applied: 1,
      failed: 1,
      pending: 1,
      disconnected: 0,
      unconfirmed: 0,
      complete: false,
      trace_id: "4bf92f3577b34da6a3ce929d0e0e4736",
      trace_url: "http://jaeger:16686/trace/4bf92f3577b34da6a3ce929d0e0e4736?uiEmbed=v0",
      clients: undefined,
      clients_omitted: 0,
    },
  );
  assert.deepEqual(data?.clients, [
    { client_id: "a", state: "failed", error: "source answered 500", latency_ms: 12 },
    { client_id: "c", state: "pending", error: "", latency_ms: 12 },
    { client_id: "b", state: "applied", error: "", latency_ms: 12 },
  ]);
  assert.deepEqual([policy?.kind, policy?.policy_hash], ["policy", "f00d"]);
  assert.equal(dashboardState(input({ updates: [update(1n)] })).updates[0]?.trace_url, "", "no template, no link");
});

test("OPAL clients are marked, with which updater each connection is and whether it confirms", () => {
  const state = dashboardState(
    input({
      sessions: [
        session("opal:10.0.0.7:4001", { protocol: "opal-ws", confirms: false, topics: ["policy_data"] }),
        session("opal:10.0.0.7:4002", { protocol: "opal-ws", confirms: false, topics: ["policy:.", "policy:rbac"] }),
        session("opal:10.0.0.8:5001", { protocol: "opal-ws", confirms: true, scope: "acme", topics: ["acme:data:policy_data", "acme:scope"] }),
        session("mesh-1"),
      ],
    }),
  );
  assert.deepEqual(
    state.clients.map((client) => [client.client_id, client.protocol, client.opal_updater, client.confirms]),
    [
      ["mesh-1", "opal-mesh", "", true],
      ["opal:10.0.0.7:4001", "opal", "data", false],
      ["opal:10.0.0.7:4002", "opal", "policy", false],
      ["opal:10.0.0.8:5001", "opal", "data", true],
    ],
  );
});

test("a client's labels are in its state, sorted by key; an OPAL client has none", () => {
  const state = dashboardState(input({ sessions: [session("canary", { labels: { zone: "eu", canary: "true", "example.com/tier": "gold" } }), session("opal:10.0.0.7:4001", { protocol: "opal-ws", confirms: false })] }));
  const canary = state.clients.find((client) => client.client_id === "canary");
  assert.deepEqual(Object.entries(canary?.labels ?? {}), [
    ["canary", "true"],
    ["example.com/tier", "gold"],
    ["zone", "eu"],
  ]);
  assert.deepEqual(state.clients.find((client) => client.protocol === "opal")?.labels, {});
});

test("sent, unconfirmed is its own delivery state: counted apart, never as applied or pending", () => {
  const state = dashboardState(
    input({
      updates: [
        update(12n, {}, [
          ["opal:b", DeliveryState.SENT_UNCONFIRMED, ""],
          ["mesh", DeliveryState.APPLIED, ""],
          ["gone", DeliveryState.DISCONNECTED, ""],
          ["opal:a", DeliveryState.SENT_UNCONFIRMED, ""],
          ["slow", DeliveryState.PENDING, ""],
        ]),
      ],
    }),
  );
  const [data] = state.updates;
  assert.deepEqual([data?.applied, data?.pending, data?.unconfirmed, data?.disconnected], [1, 1, 2, 1]);
  assert.deepEqual(
    data?.clients.map((client) => [client.client_id, client.state]),
    [
      ["slow", "pending"],
      ["opal:a", "unconfirmed"],
      ["opal:b", "unconfirmed"],
      ["gone", "disconnected"],
      ["mesh", "applied"],
    ],
  );
});

test("limits: clients and each update's clients are capped, and the rest counted", () => {
  const deliveries: Array<[string, DeliveryState, string]> = ["c1", "c2", "c3"].map((id) => [id, DeliveryState.APPLIED, ""]);
  const state = dashboardState(input({ maxClients: 2, maxClientsPerUpdate: 1, sessions: [session("x"), session("y"), session("z")], updates: [update(1n, {}, deliveries)] }));
  assert.deepEqual(
    state.clients.map((client) => client.client_id),
    ["x", "y"],
  );
  assert.deepEqual([state.server.client_count, state.server.clients_omitted], [3, 1]);
  assert.deepEqual([state.updates[0]?.clients.length, state.updates[0]?.clients_omitted, state.updates[0]?.applied], [1, 2, 3]);
});

test("a caller sees only the scopes it may use", () => {
  const state = dashboardState(
    input({
      canSee: (scope) => scope === "acme",
      sessions: [session("ours", { scope: "acme" }), session("theirs", { scope: "globex" }), session("default-client")],
      updates: [update(2n, { scopes: ["acme"] }), update(1n, { scopes: ["globex"] }), update(3n, { scopes: ["acme", "globex"] })],
    }),
  );
  assert.deepEqual(
    state.clients.map((client) => client.client_id),
    ["ours"],
  );
  assert.deepEqual(
    state.updates.map((update) => update.position),
    [2],
  );
  assert.equal(state.server.client_count, 1, "nor does it count the others");
});

test("the page: inline only, its script parses, text goes in as text", () => {
  assert.doesNotThrow(() => new Script(DASHBOARD_SCRIPT, { filename: "dashboard.js" }));
  assert.ok(DASHBOARD_PAGE.includes(`<script>${DASHBOARD_SCRIPT}</script>`));
  assert.ok(DASHBOARD_PAGE.includes(`<style>${DASHBOARD_STYLE}</style>`));
  assert.doesNotMatch(DASHBOARD_PAGE, /\b(src|href)=["']?(https?:)?\/\//i, "no external assets");
  assert.doesNotMatch(DASHBOARD_SCRIPT, /innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(/, "text goes in with textContent only");
});

/**
 * What the dashboard shows, as JSON: this distributor's head, its connected clients with
 * their positions, lag and reported health, and the recent updates with each client's
 * delivery. Pure: the routes hand it the live objects, the specs hand it plain ones.
 */
import { DeliveryState } from "../../../gen/opal/mesh/v1/delivery_pb.js";
import type { PolicyRollout } from "../../../gen/opal/mesh/v1/event_pb.js";
import { describeSelector } from "../../common/rollout/canary-selector.js";
import { traceUrl } from "../../common/config/dashboard-config.js";
import { scopeNoticeTopic, unscopeTopic } from "../../common/scopes/scoped-topics.js";
import type { RecentUpdate } from "../delivery-tracker.js";
import type { ClientSession } from "../session.js";
import type { DashboardClient, DashboardState, DashboardUpdate, DeliveryName, Status } from "./state-types.js";

export type { DashboardClient, DashboardState, DashboardUpdate, Status } from "./state-types.js";

export type SessionView = Pick<
  ClientSession,
  "clientId" | "sessionId" | "scope" | "topics" | "peer" | "connectedAt" | "ackedPosition" | "sentPosition" | "deliveredPosition" | "lastFailure" | "lastReport" | "protocol" | "confirms" | "labels"
>;

export interface DashboardInput {
  headPosition: bigint;
  logId: string;
  /** The fan-out's snapshot of the log. */
  snapshot?: { entries: number; bytes: number; incomplete: string | undefined };
  startedAt: number;
  now: number;
  sessions: readonly SessionView[];
  updates: readonly RecentUpdate[];
  /** OPAL_MESH_TRACE_UI_URL. */
  traceUiUrl: string | undefined;
  /** Whether the caller may see a scope's clients and updates (a tenant's token sees its own). */
  canSee: (scope: string) => boolean;
  /** At most this many clients are listed (the ones in trouble first). */
  maxClients: number;
  /** At most this many clients are listed per update (failed first, then pending). */
  maxClientsPerUpdate: number;
  /** The default scope's staged rollout in its canary stage (from the fan-out's snapshot). */
  rollout?: { candidate: string; rollout: PolicyRollout } | undefined;
}

const STATUS_ORDER: Record<Status, number> = { unhealthy: 0, loading: 1, unknown: 2, ok: 3 };
const STATE_ORDER: Record<DeliveryName, number> = { failed: 0, pending: 1, unconfirmed: 2, disconnected: 3, applied: 4 };

function deliveryName(state: DeliveryState): DeliveryName {
  if (state === DeliveryState.APPLIED) return "applied";
  if (state === DeliveryState.FAILED) return "failed";
  if (state === DeliveryState.DISCONNECTED) return "disconnected";
  if (state === DeliveryState.SENT_UNCONFIRMED) return "unconfirmed";
  return "pending";
}

/** How far behind the head a client is, not counting events that were never addressed to it. */
export function clientLag(session: Pick<SessionView, "ackedPosition" | "sentPosition" | "deliveredPosition">, head: bigint): bigint {
  // Everything sent was ACKed: what was skipped up to sentPosition was not for this client.
  const caughtUpTo = session.ackedPosition >= session.deliveredPosition && session.sentPosition > session.ackedPosition ? session.sentPosition : session.ackedPosition;
  return head > caughtUpTo ? head - caughtUpTo : 0n;
}

function statusOf(healthy: boolean | undefined, ready: boolean | undefined): Status {
  if (healthy === undefined) return "unknown";
  if (!healthy) return "unhealthy";
  return ready === true ? "ok" : "loading";
}

/** An OPAL client's policy updater subscribes to policy topics only; its data updater, to data topics. */
function opalUpdater(session: SessionView, topics: readonly string[]): DashboardClient["opal_updater"] {
  if (session.protocol !== "opal-ws") return "";
  return topics.length > 0 && topics.every((topic) => topic.startsWith("policy:")) ? "policy" : "data";
}

function clientOf(session: SessionView, head: bigint): DashboardClient {
  const report = session.lastReport?.report;
  const notice = scopeNoticeTopic(session.scope);
  const topics = session.topics.filter((topic) => topic !== notice).map(unscopeTopic);
  return {
    client_id: session.clientId,
    session_id: session.sessionId,
    scope: session.scope,
    topics,
    peer: session.peer,
    connected_at: new Date(session.connectedAt).toISOString(),
    acked_position: Number(session.ackedPosition),
    sent_position: Number(session.sentPosition),
    lag: Number(clientLag(session, head)),
    healthy: report?.healthy ?? null,
    ready: report?.ready ?? null,
    opa_reachable: report?.opaReachable ?? null,
    policy_hash: report?.policyHash ?? "",
    applied_position: report === undefined ? null : Number(report.appliedPosition),
    message: report?.message ?? "",
    stale: report?.stale ?? null,
    stale_reason: report?.staleReason ?? "",
    last_error: session.lastFailure?.error ?? "",
    last_failed_update_id: session.lastFailure?.updateId ?? "",
    status: statusOf(report?.healthy, report?.ready),
    protocol: session.protocol === "opal-ws" ? "opal" : "opal-mesh",
    opal_updater: opalUpdater(session, topics),
    confirms: session.confirms,
    // Sorted by key, so the chips keep their order from one refresh to the next.
    labels: Object.fromEntries(Object.entries(session.labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
  };
}

function updateOf(update: RecentUpdate, input: DashboardInput): DashboardUpdate {
  const { status } = update;
  const clients = status.clients
    .map((client) => ({ client_id: client.clientId, state: deliveryName(client.state), error: client.error, latency_ms: Number(client.latencyMs) }))
    .sort((a, b) => STATE_ORDER[a.state] - STATE_ORDER[b.state] || a.client_id.localeCompare(b.client_id));
  const listed = clients.slice(0, input.maxClientsPerUpdate);
  return {
    update_id: status.updateId,
    kind: update.kind,
    policy_hash: update.policyHash,
    reason: update.reason,
    scope: update.scopes.join(", "),
    position: Number(status.position),
    published_at: new Date(Number(status.publishedAtUnixMs)).toISOString(),
    applied: status.applied,
    failed: status.failed,
    pending: status.pending,
    disconnected: status.disconnected,
    unconfirmed: status.unconfirmed,
    complete: status.complete,
    trace_id: status.traceId,
    trace_url: traceUrl(input.traceUiUrl, status.traceId),
    clients: listed,
    clients_omitted: clients.length - listed.length,
  };
}

export function dashboardState(input: DashboardInput): DashboardState {
  const head = input.headPosition;
  const clients = input.sessions
    .filter((session) => input.canSee(session.scope))
    .map((session) => clientOf(session, head))
    .sort((a, b) => STATUS_ORDER[a.status] - STATUS_ORDER[b.status] || a.client_id.localeCompare(b.client_id) || a.session_id.localeCompare(b.session_id));
  const listed = clients.slice(0, input.maxClients);
  return {
    server: {
      head_position: Number(head),
      log_id: input.logId,
      started_at: new Date(input.startedAt).toISOString(),
      uptime: Math.max(0, Math.round((input.now - input.startedAt) / 1000)),
      client_count: clients.length,
      clients_omitted: clients.length - listed.length,
      trace_links: input.traceUiUrl !== undefined,
      snapshot_entries: input.snapshot?.entries ?? 0,
      snapshot_bytes: input.snapshot?.bytes ?? 0,
      snapshot_incomplete: input.snapshot?.incomplete ?? "",
    },
    clients: listed,
    updates: input.updates.filter((update) => update.scopes.every(input.canSee)).map((update) => updateOf(update, input)),
    rollout:
      input.rollout === undefined
        ? null
        : { candidate: input.rollout.candidate, stable: input.rollout.rollout.stableHash, canaries: describeSelector({ labels: input.rollout.rollout.canaryLabels, percent: input.rollout.rollout.canaryPercent }), reason: input.rollout.rollout.reason },
  };
}

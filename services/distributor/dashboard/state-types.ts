/**
 * The dashboard's JSON, as the page reads it: types only, with no imports, so that the
 * page's checked script (page-script.js, type-checked with the DOM library) can use them.
 */
export type Status = "ok" | "loading" | "unhealthy" | "unknown";

export interface DashboardClient {
  client_id: string;
  session_id: string;
  scope: string;
  topics: string[];
  peer: string;
  connected_at: string;
  acked_position: number;
  sent_position: number;
  /** Positions the client is behind the head, counting only events addressed to it. */
  lag: number;
  /** From the client's last report; null before its first (or from a client too old to report). */
  healthy: boolean | null;
  ready: boolean | null;
  opa_reachable: boolean | null;
  policy_hash: string;
  applied_position: number | null;
  /** Why the client is not healthy or ready, in its own words. */
  message: string;
  /** The data in its OPA counts as stale (data.system.opal.stale); null before its first report. */
  stale: boolean | null;
  stale_reason: string;
  /** The last update the client ACKed as FAILED, and why. */
  last_error: string;
  last_failed_update_id: string;
  status: Status;
  /** "opal": an unmodified OPAL client on OPAL's websocket at /ws (its data and policy updaters are one connection each). */
  protocol: "opal" | "opal-mesh";
  /** For an OPAL connection, which of its updaters it is (by its topics); "" for opal-mesh clients. */
  opal_updater: "data" | "policy" | "";
  /** Whether what it applied is confirmed: ACKs, or an OPAL client's update reports (else its deliveries are "sent, unconfirmed"). */
  confirms: boolean;
  /** Its labels (OPAL_MESH_CLIENT_LABELS), by key; empty for OPAL clients. */
  labels: Record<string, string>;
}

/** "unconfirmed": sent to a client that cannot confirm it (an OPAL client without update reports); never applied. */
export type DeliveryName = "applied" | "failed" | "pending" | "disconnected" | "unconfirmed";

export interface DashboardUpdate {
  update_id: string;
  kind: "data" | "policy";
  /** The new policy version, for a policy change. */
  policy_hash: string;
  reason: string;
  scope: string;
  position: number;
  published_at: string;
  applied: number;
  failed: number;
  pending: number;
  /** Addressed clients whose stream ended before they acknowledged it (nothing waits on them). */
  disconnected: number;
  /** Sent to clients that cannot confirm it (nothing waits on them). */
  unconfirmed: number;
  complete: boolean;
  trace_id: string;
  trace_url: string;
  clients: Array<{ client_id: string; state: DeliveryName; error: string; latency_ms: number }>;
  /** How many addressed clients the list above leaves out. */
  clients_omitted: number;
}

export interface DashboardState {
  server: {
    head_position: number;
    log_id: string;
    started_at: string;
    uptime: number;
    client_count: number;
    clients_omitted: number;
    trace_links: boolean;
    /** The log's snapshot that fresh, emptied and resynced clients write: its entries and data bytes. */
    snapshot_entries: number;
    snapshot_bytes: number;
    /** Why the snapshot misses events the log no longer holds; empty when complete. */
    snapshot_incomplete: string;
  };
  clients: DashboardClient[];
  updates: DashboardUpdate[];
  /** A staged rollout's canary stage under way (the default scope's policy); null otherwise. */
  rollout: DashboardRollout | null;
}

export interface DashboardRollout {
  candidate: string;
  stable: string;
  /** Who the canaries are: "canary=true", "10% of clients". */
  canaries: string;
  reason: string;
}

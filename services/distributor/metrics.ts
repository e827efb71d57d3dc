/**
 * The distributor's Prometheus metrics. Gauges are read from the live sessions at scrape
 * time, so a client that leaves takes its series with it; counters and the latency
 * histogram are fed by the delivery tracker as ACKs arrive.
 */
import type { SnapshotStats } from "../common/snapshot/types.js";
import { Counter, Gauge, LATENCY_BUCKETS, type Registry } from "../common/telemetry/metrics.js";
import { TalliedHistogram } from "../common/telemetry/tallied-histogram.js";
import { clientLag } from "./dashboard/state.js";
import type { UpdateKind } from "./delivery-tracker.js";
import type { DistributorFault, DistributorObserver } from "./observer.js";
import type { ClientSession } from "./session.js";

export type LagSource = Pick<ClientSession, "clientId" | "ackedPosition" | "sentPosition" | "deliveredPosition" | "lastReport">;

/** Each client's lag; a client with several streams (a reconnect overlapping) counts its best one. */
export function lagByClient(head: bigint, sessions: Iterable<LagSource>): Map<string, bigint> {
  const lags = new Map<string, bigint>();
  for (const session of sessions) {
    const lag = clientLag(session, head);
    const known = lags.get(session.clientId);
    if (known === undefined || lag < known) lags.set(session.clientId, lag);
  }
  return lags;
}

export interface DistributorMetricsSource {
  /** The last position dispatched. */
  readonly head: bigint;
  readonly sessionCount: number;
  listSessions(): LagSource[];
  /** The fan-out's snapshot of the log (what fresh, emptied and resynced clients write). */
  readonly snapshot?: { readonly stats: SnapshotStats };
}

export class DistributorMetrics implements DistributorObserver {
  private readonly faults: Counter<"part">;
  private readonly delivered: Counter<"kind">;
  private readonly ackFailures: Counter<"kind">;
  private readonly latency: TalliedHistogram;
  /** ACKs counted since the last scrape, by kind: added to the counters when they are collected (one inc per scrape, not per ACK). */
  private readonly tallies = { data: { delivered: 0, failed: 0 }, policy: { delivered: 0, failed: 0 } };

  constructor(registry: Registry, source: DistributorMetricsSource) {
    const registers = [registry];
    new Gauge({ name: "opal_mesh_distributor_connected_clients", help: "Client streams open on this distributor.", registers, collect() {
      this.set(source.sessionCount);
    } });
    new Gauge({ name: "opal_mesh_distributor_log_head_position", help: "The last log position this distributor dispatched.", registers, collect() {
      this.set(Number(source.head));
    } });
    const snapshot = source.snapshot;
    if (snapshot !== undefined) {
      new Gauge({ name: "opal_mesh_distributor_snapshot_entries", help: "Entries in this distributor's snapshot of the log (what fresh, emptied and resynced clients write with their baseline).", registers, collect() {
        this.set(snapshot.stats.entries);
      } });
      new Gauge({ name: "opal_mesh_distributor_snapshot_bytes", help: "Bytes of data in this distributor's snapshot of the log.", registers, collect() {
        this.set(snapshot.stats.bytes);
      } });
    }
    new Gauge({ name: "opal_mesh_distributor_client_lag_positions", help: "Log positions between the head and what each connected client is known to hold.", labelNames: ["client_id"], registers, collect() {
      // Rebuilt at every scrape: a client that disconnected has no series.
      this.reset();
      for (const [clientId, lag] of lagByClient(source.head, source.listSessions())) this.set({ client_id: clientId }, Number(lag));
    } });
    new Gauge({ name: "opal_mesh_distributor_stale_clients", help: "Connected clients whose last report says the data in their OPA is stale (data.system.opal.stale).", registers, collect() {
      this.set(source.listSessions().filter((session) => session.lastReport?.report.stale === true).length);
    } });
    const tallies = this.tallies;
    this.delivered = new Counter({ name: "opal_mesh_distributor_events_delivered_total", help: "Updates a client acknowledged (applied or failed), by kind.", labelNames: ["kind"], registers, collect() {
      for (const kind of ["data", "policy"] as const) {
        this.inc({ kind }, tallies[kind].delivered);
        tallies[kind].delivered = 0;
      }
    } });
    this.ackFailures = new Counter({ name: "opal_mesh_distributor_ack_failures_total", help: "Updates a client acknowledged as failed, by kind.", labelNames: ["kind"], registers, collect() {
      for (const kind of ["data", "policy"] as const) {
        this.inc({ kind }, tallies[kind].failed);
        tallies[kind].failed = 0;
      }
    } });
    this.latency = new TalliedHistogram({ name: "opal_mesh_distributor_delivery_latency_seconds", help: "From publish (the broadcaster accepting the update) to the client's ACK, by kind.", labelName: "kind", labelValues: ["data", "policy"], buckets: LATENCY_BUCKETS, registers });
    this.faults = new Counter({ name: "opal_mesh_distributor_faults_total", help: "Failures the distributor logged and recovered from (the part retries or the client resumes), by part.", labelNames: ["part"], registers });
    for (const part of ["log subscription", "recent events", "catch-up"] satisfies DistributorFault[]) this.faults.inc({ part }, 0);
    for (const kind of ["data", "policy"] as const) {
      // Present from the start, so rates and deltas have a zero to start from.
      this.delivered.inc({ kind }, 0);
      this.ackFailures.inc({ kind }, 0);
    }
  }

  onFault(fault: DistributorFault): void {
    this.faults.inc({ part: fault });
  }

  /** One client's ACK of a tracked update (told by the delivery tracker). */
  onDelivered(kind: UpdateKind, latencyMs: number, failed: boolean): void {
    const tally = this.tallies[kind];
    tally.delivered++;
    if (failed) tally.failed++;
    this.latency.observe(kind, latencyMs / 1000);
  }
}

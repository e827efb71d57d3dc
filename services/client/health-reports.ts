/**
 * The client's health, reported up its stream (ClientReport) so the distributor's
 * dashboard shows every client's state: once after each Welcome, whenever it changes (at
 * most every `minIntervalMs`), and every `refreshMs` regardless.
 */
import type { ClientReport } from "../../gen/opal/mesh/v1/distributor_pb.js";
import { type Closed, Closing, type Component } from "../common/lifecycle.js";
import type { ClientHealth } from "./health.js";

export type ClientReportFields = Omit<ClientReport, "$typeName">;

/** What the health says, in the report's terms; `message` says why it is not healthy or ready. */
export function healthReport(health: ClientHealth): ClientReportFields {
  return {
    healthy: health.isHealthy(),
    ready: health.isReady(),
    opaReachable: health.engineReachable,
    policyHash: health.policyHash,
    // Positions whose effects OPA no longer holds are not claimed: 0 until it holds them again.
    appliedPosition: health.storeState.held ? health.appliedPosition : 0n,
    message: health.message() ?? "",
    stale: health.staleness.stale,
    staleReason: health.staleness.reasons.join("\n"),
  };
}

export interface HealthReportsOptions {
  snapshot: () => ClientReportFields;
  /** Sends up the current stream; a report made while disconnected is dropped (Welcome brings a fresh one). */
  send: (report: ClientReportFields) => void;
  minIntervalMs?: number;
  refreshMs?: number;
  /** How often the health is compared with what was last sent. */
  checkIntervalMs?: number;
  now?: () => number;
}

/**
 * ClientHealth's fields are plain properties written from many places (pipeline results,
 * the liveness probe, the stream): comparing a snapshot on a short timer sees every change
 * without a hook in each writer.
 */
export class HealthReports implements Component {
  readonly name = "health-reports";
  private readonly closing = new Closing();
  private timer: NodeJS.Timeout | undefined;
  private lastKey = "";
  private lastSentAt = Number.NEGATIVE_INFINITY;
  private readonly minIntervalMs: number;
  private readonly refreshMs: number;
  private readonly now: () => number;

  constructor(private readonly options: HealthReportsOptions) {
    this.minIntervalMs = options.minIntervalMs ?? 500;
    this.refreshMs = options.refreshMs ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  get closed(): Promise<Closed> {
    return this.closing.closed;
  }

  start(signal: AbortSignal): Promise<void> {
    if (this.timer !== undefined || signal.aborted || this.closing.isClosed) return Promise.resolve();
    this.timer = setInterval(() => this.check(), this.options.checkIntervalMs ?? 250);
    this.timer.unref();
    signal.addEventListener("abort", () => void this.stop(), { once: true });
    return Promise.resolve();
  }

  stop(): Promise<void> {
    clearInterval(this.timer);
    this.closing.stopped();
    return Promise.resolve();
  }

  /** A new session: the distributor knows nothing of us yet. */
  sendNow(): void {
    this.send(this.options.snapshot());
  }

  /** Sends when the health changed and the last report is old enough, or when it is due anyway. */
  check(): void {
    const report = this.options.snapshot();
    const elapsed = this.now() - this.lastSentAt;
    if ((keyOf(report) !== this.lastKey && elapsed >= this.minIntervalMs) || elapsed >= this.refreshMs) this.send(report);
  }

  private send(report: ClientReportFields): void {
    this.lastKey = keyOf(report);
    this.lastSentAt = this.now();
    this.options.send(report);
  }
}

function keyOf(report: ClientReportFields): string {
  return [report.healthy, report.ready, report.opaReachable, report.policyHash, report.appliedPosition, report.message, report.stale, report.staleReason].join("\u0000");
}

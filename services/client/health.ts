/**
 * The client's health, as OPAL reports it and a little more: /healthy means the last
 * policy and data transactions succeeded, the engine answers, OPA holds the state the
 * client claims, and (offline mode) the last backup was written; /ready means the policy
 * and every baseline data source were loaded (OPAL #801 asks for exactly that) and OPA
 * still holds them.
 */
import type { Staleness } from "./freshness.js";
import { StoreState, type StoreStateReport } from "./store-state.js";

export interface Transaction {
  ok: boolean;
  kind: string;
  id: string;
  error?: string;
  at: string;
}

interface Recorded {
  transaction: Omit<Transaction, "at">;
  atMs: number;
}

function reported({ transaction, atMs }: Recorded): Transaction {
  return { ...transaction, at: new Date(atMs).toISOString() };
}

/** Offline mode's backups, as the backup records them. */
export interface BackupHealth {
  path: string;
  /** The last attempt wrote the backup (true before the first attempt). */
  ok: boolean;
  lastSuccessAt?: string;
  lastFailureAt?: string;
  /** The last failure's error (file-system errors name the path, never a secret). */
  lastError?: string;
  failures: number;
}

export interface HealthReport {
  /** "degraded": OPA holds what the client claims, but the offline backup is failing. */
  status: "ok" | "degraded" | "unavailable";
  /** Why it is not ok or not ready. */
  message?: string;
  online: boolean;
  ready: boolean;
  engine: { reachable: boolean; problem?: string };
  stream: { connected: boolean; error?: string };
  /** `appliedPositionHeld` false: OPA no longer holds everything up to `appliedPosition` (see `state`). */
  data: { enabled: boolean; baselineLoaded: boolean; lastTransaction?: Transaction; appliedPosition: string; appliedPositionHeld: boolean; pending: number };
  policy: { enabled: boolean; loaded: boolean; hash: string; lastTransaction?: Transaction };
  /** Whether OPA holds the state the client had (false from a loss until it is back). */
  state: StoreStateReport;
  backup?: BackupHealth;
  /** Whether the data in OPA is stale (data.system.opal.stale), since when and why. */
  freshness: { stale: boolean; since?: string; reasons: string[] };
  recentFailures: Transaction[];
}

export class ClientHealth {
  engineReachable = true;
  /**
   * The engine answers but refuses the client's requests (401/403) or its reads fail: what
   * it holds cannot be checked, nor kept current. Set by the liveness probe; undefined when fine.
   */
  engineProblem: string | undefined;
  streamConnected = false;
  streamError: string | undefined;
  baselineLoaded = false;
  policyLoaded = false;
  policyHash = "";
  appliedPosition = 0n;
  /** Whether OPA holds the state the client claims (lost, reloaded, held again). */
  readonly storeState = new StoreState();
  /** Offline mode's backups; undefined when off. */
  backup: BackupHealth | undefined;
  /** How many updates wait to be written. */
  pending: () => number = () => 0;
  /** Kept by the freshness monitor (freshness.ts). */
  staleness: Staleness = { stale: false, since: undefined, reasons: [] };
  // Recorded for every event: the time is kept as a number and formatted only when reported.
  private lastData: Recorded | undefined;
  private lastPolicy: Recorded | undefined;
  private readonly failures: Recorded[] = [];

  constructor(
    readonly dataEnabled: boolean,
    readonly policyEnabled: boolean,
  ) {}

  recordData(transaction: Omit<Transaction, "at">): void {
    this.lastData = { transaction, atMs: Date.now() };
    if (!transaction.ok) this.remember(this.lastData);
  }

  recordPolicy(transaction: Omit<Transaction, "at">): void {
    this.lastPolicy = { transaction, atMs: Date.now() };
    if (!transaction.ok) this.remember(this.lastPolicy);
  }

  /** The data in OPA can be trusted: it answers, the last transactions succeeded, nothing was lost. */
  isServing(): boolean {
    const dataOk = !this.dataEnabled || this.lastData?.transaction.ok !== false;
    const policyOk = !this.policyEnabled || this.lastPolicy?.transaction.ok !== false;
    return this.engineReachable && this.engineProblem === undefined && dataOk && policyOk && this.storeState.held;
  }

  isHealthy(): boolean {
    return this.isServing() && this.backup?.ok !== false;
  }

  /** Policy and every baseline source were loaded (into the OPA there is now). */
  loaded(): boolean {
    return (!this.policyEnabled || this.policyLoaded) && (!this.dataEnabled || this.baselineLoaded);
  }

  isReady(): boolean {
    return this.loaded() && this.storeState.held;
  }

  /** Why the client is not healthy or not ready (the first reason that applies); undefined when it is both. */
  message(): string | undefined {
    if (!this.engineReachable) return "the policy store (OPA) does not answer";
    if (this.engineProblem !== undefined) return this.engineProblem;
    const lost = this.storeState.message();
    if (lost !== undefined) return lost;
    const failure = [this.lastPolicy?.transaction, this.lastData?.transaction].find((transaction) => transaction?.ok === false);
    if (failure !== undefined) {
      const what = failure.kind === "policy" ? "policy" : failure.kind === "event" ? "data update" : failure.kind === "baseline" ? "baseline data" : "data refresh";
      // The error first: the id is long, and the dashboard shows the last failed update's id anyway.
      return `${what} failed: ${failure.error ?? "unknown error"}`;
    }
    if (this.backup?.ok === false) return `the store backup to ${this.backup.path} failed: ${this.backup.lastError ?? "unknown error"}`;
    if (this.policyEnabled && !this.policyLoaded) return "loading the policy";
    if (this.dataEnabled && !this.baselineLoaded) return "loading the baseline data";
    return undefined;
  }

  report(): HealthReport {
    const message = this.message();
    return {
      status: this.isHealthy() ? "ok" : this.isServing() ? "degraded" : "unavailable",
      ...(message === undefined ? {} : { message }),
      online: this.streamConnected,
      ready: this.isReady(),
      engine: this.engineProblem === undefined ? { reachable: this.engineReachable } : { reachable: this.engineReachable, problem: this.engineProblem },
      stream: this.streamError === undefined || this.streamConnected ? { connected: this.streamConnected } : { connected: false, error: this.streamError },
      data: {
        enabled: this.dataEnabled,
        baselineLoaded: this.baselineLoaded,
        ...(this.lastData === undefined ? {} : { lastTransaction: reported(this.lastData) }),
        appliedPosition: this.appliedPosition.toString(),
        appliedPositionHeld: this.storeState.held,
        pending: this.pending(),
      },
      policy: { enabled: this.policyEnabled, loaded: this.policyLoaded, hash: this.policyHash, ...(this.lastPolicy === undefined ? {} : { lastTransaction: reported(this.lastPolicy) }) },
      state: this.storeState.report(),
      ...(this.backup === undefined ? {} : { backup: { ...this.backup } }),
      freshness: { stale: this.staleness.stale, ...(this.staleness.since === undefined ? {} : { since: this.staleness.since }), reasons: this.staleness.reasons },
      recentFailures: this.failures.map(reported),
    };
  }

  private remember(transaction: Recorded): void {
    this.failures.push(transaction);
    if (this.failures.length > 20) this.failures.shift();
  }
}

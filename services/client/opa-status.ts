/**
 * The client's status inside OPA, at data.system.opal: where OPAL's healthcheck policy
 * puts `ready` and `healthy`, so Rego can refuse decisions while stale, plus the log
 * position the data in OPA corresponds to. It is written in the same transaction as each
 * data update, so position and data never disagree; if it is missing, OPA lost its state.
 * After a loss, `ready` and `healthy` stay false and `state` says what is missing, until
 * OPA holds again what the client had: Rego never sees a claim the store does not back.
 */
import type { ClientHealth, Transaction } from "./health.js";

export const STATUS_PATH = "/system/opal";

export interface PositionMark {
  logId: string;
  position: bigint;
}

export interface StatusSnapshot {
  mark: PositionMark | undefined;
  policyHash: string;
  rootDataKeys: string[];
  baselineLoaded: boolean;
  /** The client that wrote it was ready: policy and every baseline source loaded. */
  ready: boolean;
  /** The client that wrote it knew OPA had lost state it did not hold again. */
  lost?: { at: string | undefined; reason: string; notHeld: string[]; complete: boolean };
}

/** How many not-held paths the status document lists (a loss with more is carried on as "everything"). */
export const NOT_HELD_LISTED = 100;

/** What a status document found in OPA says. */
export function readStatus(document: unknown): StatusSnapshot | undefined {
  if (typeof document !== "object" || document === null) return undefined;
  const record = document as Record<string, unknown>;
  const policy = (record.policy ?? {}) as Record<string, unknown>;
  const position = record.position;
  const logId = record.log_id;
  return {
    mark: typeof position === "number" && Number.isSafeInteger(position) && typeof logId === "string" && logId !== "" ? { logId, position: BigInt(position) } : undefined,
    policyHash: typeof policy.hash === "string" ? policy.hash : "",
    rootDataKeys: Array.isArray(policy.root_data_keys) ? policy.root_data_keys.filter((key): key is string => typeof key === "string") : [],
    baselineLoaded: record.baseline_loaded === true,
    ready: record.ready === true,
    ...readLoss(record.state),
  };
}

function readLoss(state: unknown): Pick<StatusSnapshot, "lost"> {
  if (typeof state !== "object" || state === null || (state as { held?: unknown }).held !== false) return {};
  const record = state as Record<string, unknown>;
  const notHeld = Array.isArray(record.not_held) ? record.not_held.filter((path): path is string => typeof path === "string") : [];
  return {
    lost: {
      at: typeof record.lost_at === "string" ? record.lost_at : undefined,
      reason: typeof record.reason === "string" ? record.reason : "recorded in OPA's status document",
      notHeld,
      complete: typeof record.not_held_count === "number" && record.not_held_count <= notHeld.length,
    },
  };
}

/**
 * What the status document in OPA says, and its rendering. Only the sync state (its owner,
 * sync-state.ts) changes it, after the transaction that wrote it committed.
 */
export class StatusDocument {
  private committedMark: PositionMark | undefined;
  private hash = "";
  private keys: readonly string[] = [];
  private inStore = false;

  constructor(
    private readonly health: ClientHealth,
    private readonly clientId: string,
  ) {}

  /** The position the data in OPA corresponds to (advanced only in the transaction that gets it there). */
  get mark(): PositionMark | undefined {
    return this.committedMark;
  }

  get policyHash(): string {
    return this.hash;
  }

  get rootDataKeys(): readonly string[] {
    return this.keys;
  }

  /** The document is in the store (we wrote it, or found it there). */
  get written(): boolean {
    return this.inStore;
  }

  restore(snapshot: StatusSnapshot): void {
    this.inStore = true;
    this.committedMark = snapshot.mark;
    this.hash = snapshot.policyHash;
    this.keys = snapshot.rootDataKeys;
  }

  forget(): void {
    this.inStore = false;
    this.committedMark = undefined;
    this.hash = "";
    this.keys = [];
  }

  /** A transaction that wrote the document (rendered at `mark`) committed. */
  committed(mark: PositionMark | undefined): void {
    this.committedMark = mark;
    this.inStore = true;
  }

  /** A policy bundle was applied: the next write records its version. */
  policyApplied(hash: string, rootDataKeys: readonly string[]): void {
    this.hash = hash;
    this.keys = rootDataKeys;
  }

  /**
   * The document as it will be once `mark` is committed; `transaction` is the data
   * transaction it is written with, counted as the last one (and in `healthy`).
   */
  render(mark: PositionMark | undefined = this.mark, transaction?: Transaction, baselineLoaded = this.health.baselineLoaded): Uint8Array {
    const report = this.health.report();
    const held = report.state.held;
    const ready = (!this.health.policyEnabled || this.health.policyLoaded) && (!this.health.dataEnabled || baselineLoaded) && held;
    const lastData = transaction ?? report.data.lastTransaction ?? null;
    // A failing backup does not make OPA's data stale: it shows in /healthy and under `backup`.
    const healthy = report.engine.reachable && (lastData === null || lastData.ok) && report.policy.lastTransaction?.ok !== false && held;
    return Buffer.from(
      JSON.stringify({
        ready,
        healthy,
        client_id: this.clientId,
        log_id: mark?.logId ?? "",
        position: mark === undefined ? null : Number(mark.position),
        baseline_loaded: baselineLoaded,
        policy: { hash: this.policyHash, root_data_keys: this.rootDataKeys },
        last_data_transaction: lastData,
        last_policy_transaction: report.policy.lastTransaction ?? null,
        state: held
          ? { held: true }
          : {
              held: false,
              lost_at: report.state.lostAt,
              reason: report.state.reason,
              message: report.state.message,
              rebuilt_from: report.state.rebuiltFrom === undefined ? null : Number(report.state.rebuiltFrom),
              not_held: this.health.storeState.notHeld(NOT_HELD_LISTED),
              not_held_count: this.health.storeState.notHeldCount,
            },
        ...(report.backup === undefined ? {} : { backup: { ok: report.backup.ok, last_success_at: report.backup.lastSuccessAt ?? null, last_error: report.backup.lastError ?? null } }),
        // What Rego denies on (the example policy does): see freshness.ts for when.
        stale: report.freshness.stale,
        stale_since: report.freshness.since ?? null,
        stale_reasons: report.freshness.reasons,
        updated_at: new Date().toISOString(),
      }),
    );
  }
}

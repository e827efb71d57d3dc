/**
 * The client's status inside OPA, at data.system.opal: where OPAL's healthcheck policy
 * puts `ready` and `healthy`, so Rego can refuse decisions while stale, plus the log
 * position the data in OPA corresponds to. It is written in the same transaction as each
 * data update, so position and data never disagree; if it is missing, OPA lost its state.
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
}

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
  };
}

export class StatusDocument {
  /** The position the data in OPA corresponds to (advanced only in the transaction that gets it there). */
  mark: PositionMark | undefined;
  policyHash = "";
  rootDataKeys: string[] = [];
  /** The document is in the store (we wrote it, or found it there). */
  written = false;

  constructor(
    private readonly health: ClientHealth,
    private readonly clientId: string,
  ) {}

  restore(snapshot: StatusSnapshot): void {
    this.written = true;
    this.mark = snapshot.mark;
    this.policyHash = snapshot.policyHash;
    this.rootDataKeys = snapshot.rootDataKeys;
  }

  forget(): void {
    this.written = false;
    this.mark = undefined;
    this.policyHash = "";
    this.rootDataKeys = [];
  }

  /**
   * The document as it will be once `mark` is committed; `transaction` is the data
   * transaction it is written with, counted as the last one (and in `healthy`).
   */
  render(mark: PositionMark | undefined = this.mark, transaction?: Transaction, baselineLoaded = this.health.baselineLoaded): Uint8Array {
    const report = this.health.report();
    const ready = (!this.health.policyEnabled || this.health.policyLoaded) && (!this.health.dataEnabled || baselineLoaded);
    const lastData = transaction ?? report.data.lastTransaction ?? null;
    const healthy = report.engine.reachable && (lastData === null || lastData.ok) && report.policy.lastTransaction?.ok !== false;
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
        updated_at: new Date().toISOString(),
      }),
    );
  }
}

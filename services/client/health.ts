/**
 * The client's health, as OPAL reports it and a little more: /healthy means the last
 * policy and data transactions succeeded and the engine answers; /ready means the policy
 * and every baseline data source were loaded (OPAL #801 asks for exactly that).
 */
export interface Transaction {
  ok: boolean;
  kind: string;
  id: string;
  error?: string;
  at: string;
}

export interface HealthReport {
  status: "ok" | "unavailable";
  online: boolean;
  ready: boolean;
  engine: { reachable: boolean };
  stream: { connected: boolean; error?: string };
  data: { enabled: boolean; baselineLoaded: boolean; lastTransaction?: Transaction; appliedPosition: string; pending: number };
  policy: { enabled: boolean; loaded: boolean; hash: string; lastTransaction?: Transaction };
  recentFailures: Transaction[];
}

export class ClientHealth {
  engineReachable = true;
  streamConnected = false;
  streamError: string | undefined;
  baselineLoaded = false;
  policyLoaded = false;
  policyHash = "";
  appliedPosition = 0n;
  /** How many updates wait to be written. */
  pending: () => number = () => 0;
  private lastData: Transaction | undefined;
  private lastPolicy: Transaction | undefined;
  private readonly failures: Transaction[] = [];

  constructor(
    readonly dataEnabled: boolean,
    readonly policyEnabled: boolean,
  ) {}

  recordData(transaction: Omit<Transaction, "at">): void {
    this.lastData = { ...transaction, at: new Date().toISOString() };
    if (!transaction.ok) this.remember(this.lastData);
  }

  recordPolicy(transaction: Omit<Transaction, "at">): void {
    this.lastPolicy = { ...transaction, at: new Date().toISOString() };
    if (!transaction.ok) this.remember(this.lastPolicy);
  }

  isHealthy(): boolean {
    const dataOk = !this.dataEnabled || this.lastData?.ok !== false;
    const policyOk = !this.policyEnabled || this.lastPolicy?.ok !== false;
    return this.engineReachable && dataOk && policyOk;
  }

  isReady(): boolean {
    return (!this.policyEnabled || this.policyLoaded) && (!this.dataEnabled || this.baselineLoaded);
  }

  report(): HealthReport {
    return {
      status: this.isHealthy() ? "ok" : "unavailable",
      online: this.streamConnected,
      ready: this.isReady(),
      engine: { reachable: this.engineReachable },
      stream: this.streamError === undefined || this.streamConnected ? { connected: this.streamConnected } : { connected: false, error: this.streamError },
      data: {
        enabled: this.dataEnabled,
        baselineLoaded: this.baselineLoaded,
        ...(this.lastData === undefined ? {} : { lastTransaction: this.lastData }),
        appliedPosition: this.appliedPosition.toString(),
        pending: this.pending(),
      },
      policy: { enabled: this.policyEnabled, loaded: this.policyLoaded, hash: this.policyHash, ...(this.lastPolicy === undefined ? {} : { lastTransaction: this.lastPolicy }) },
      recentFailures: [...this.failures],
    };
  }

  private remember(transaction: Transaction): void {
    this.failures.push(transaction);
    if (this.failures.length > 20) this.failures.shift();
  }
}

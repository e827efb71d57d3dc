/**
 * Following one update's delivery from the command line: poll GET /updates/{id} until no
 * client is pending (or --timeout), drive a progress bar on a TTY (plain lines
 * otherwise), and turn the outcome into a summary and an exit code.
 */
import cliProgress from "cli-progress";
import { sleep } from "../../common/backoff.js";
import { ExitCode, RefusedError, type ServerConnection, type Terminal, detailOf } from "./shared.js";

/** One client in GET /updates/{id} (the UpdateStatus message as JSON, proto field names). */
export interface ClientDeliveryJson {
  client_id: string;
  /** DELIVERY_STATE_PENDING | _APPLIED | _FAILED | _DISCONNECTED | _SENT_UNCONFIRMED */
  state: string;
  error?: string;
  latency_ms?: string | number;
}

export interface DeliveryJson {
  update_id?: string;
  position?: string | number;
  complete: boolean;
  applied: number;
  failed: number;
  pending: number;
  /** Clients whose stream ended before they acknowledged it (nothing waits on them); absent from older servers. */
  disconnected?: number;
  /** Clients that cannot confirm it (OPAL clients without update reports); absent from older servers. */
  unconfirmed?: number;
  clients: ClientDeliveryJson[];
}

export type ClientState = "APPLIED" | "FAILED" | "PENDING" | "DISCONNECTED" | "UNCONFIRMED";

export function clientState(client: ClientDeliveryJson): ClientState {
  const state = client.state.replace(/^DELIVERY_STATE_/, "");
  if (state === "SENT_UNCONFIRMED") return "UNCONFIRMED";
  return state === "APPLIED" || state === "FAILED" || state === "DISCONNECTED" ? state : "PENDING";
}

/** GET /updates/{id}: the status, or undefined when no distributor knows the update (404). */
export async function fetchDelivery(server: ServerConnection, updateId: string): Promise<DeliveryJson | undefined> {
  const answer = await server.call("GET", `/updates/${encodeURIComponent(updateId)}`);
  if (answer.status === 404) return undefined;
  if (answer.status !== 200) throw new RefusedError(answer.status, detailOf(answer.json));
  return answer.json as DeliveryJson;
}

export interface WatchOutcome {
  /** The last status seen; undefined when the update never became known. */
  delivery: DeliveryJson | undefined;
  timedOut: boolean;
}

/** Shows progress: a bar on a TTY, otherwise a line each time the counts change. */
class ProgressView {
  private bar: cliProgress.SingleBar | undefined;
  private lastLine = "";

  constructor(private readonly terminal: Terminal) {}

  show(delivery: DeliveryJson): void {
    const total = delivery.clients.length;
    if (this.terminal.stderr.isTTY === true) {
      if (total === 0) return;
      const payload = { failed: delivery.failed, pending: delivery.pending };
      if (this.bar === undefined) {
        this.bar = new cliProgress.SingleBar(
          { stream: this.terminal.stderr, format: "delivery |{bar}| {value}/{total} applied | {failed} failed | {pending} pending", hideCursor: true, clearOnComplete: false },
          cliProgress.Presets.shades_classic,
        );
        this.bar.start(total, delivery.applied, payload);
      }
      this.bar.setTotal(total);
      this.bar.update(delivery.applied, payload);
      return;
    }
    const unconfirmed = (delivery.unconfirmed ?? 0) > 0 ? `, ${delivery.unconfirmed} sent, unconfirmed` : "";
    const line = `delivery: ${delivery.applied}/${total} applied, ${delivery.failed} failed, ${delivery.pending} pending${unconfirmed}`;
    if (line !== this.lastLine) this.terminal.err(line);
    this.lastLine = line;
  }

  stop(): void {
    this.bar?.stop();
  }
}

/**
 * Polls until the update is complete or the deadline passes. `unknownIsFinal`: a 404
 * ends the watch at once (status of an id); after publishing it only means "not
 * dispatched yet", so the watch keeps polling.
 */
export async function watchDelivery(
  server: ServerConnection,
  terminal: Terminal,
  updateId: string,
  options: { timeoutMs: number; unknownIsFinal: boolean; intervalMs?: number },
): Promise<WatchOutcome> {
  const deadline = Date.now() + options.timeoutMs;
  const view = new ProgressView(terminal);
  let delivery: DeliveryJson | undefined;
  try {
    for (;;) {
      delivery = await fetchDelivery(server, updateId);
      if (delivery === undefined && options.unknownIsFinal) return { delivery, timedOut: false };
      if (delivery !== undefined) view.show(delivery);
      if (delivery?.complete === true) return { delivery, timedOut: false };
      if (Date.now() >= deadline) return { delivery, timedOut: true };
      await sleep(Math.min(options.intervalMs ?? 200, Math.max(0, deadline - Date.now())));
    }
  } finally {
    view.stop();
  }
}

/** 1 when any client failed (it takes precedence), 2 when some are still pending, else 0 (also with clients that cannot confirm: the summary names them). */
export function deliveryExitCode(delivery: DeliveryJson | undefined): number {
  if (delivery === undefined) return ExitCode.timeout;
  if (delivery.failed > 0) return ExitCode.failed;
  if (delivery.pending > 0 || !delivery.complete) return ExitCode.timeout;
  return ExitCode.ok;
}

const STATE_COLORS = { APPLIED: "green", FAILED: "red", PENDING: "yellow", DISCONNECTED: "yellow", UNCONFIRMED: "yellow" } as const;

/** "update u1 at position 17: 2/3 applied, 1 failed, 0 pending" */
export function summaryLine(terminal: Terminal, updateId: string, delivery: DeliveryJson): string {
  const total = delivery.clients.length;
  const failed = `${delivery.failed} failed`;
  const pending = `${delivery.pending} pending`;
  return [
    `update ${updateId}${delivery.position === undefined ? "" : ` at position ${delivery.position}`}: `,
    terminal.paint(terminal.stdout, delivery.applied === total ? "green" : "bold", `${delivery.applied}/${total} applied`),
    ", ",
    delivery.failed > 0 ? terminal.paint(terminal.stdout, "red", failed) : failed,
    ", ",
    delivery.pending > 0 ? terminal.paint(terminal.stdout, "yellow", pending) : pending,
    (delivery.disconnected ?? 0) > 0 ? `, ${delivery.disconnected} disconnected` : "",
    (delivery.unconfirmed ?? 0) > 0 ? `, ${delivery.unconfirmed} sent, unconfirmed (OPAL clients without update reports)` : "",
    total === 0 ? " (no client is subscribed to its topics)" : "",
  ].join("");
}

/** The summary, then the clients that did not apply it (all clients with `everyClient`). */
export function printDelivery(terminal: Terminal, updateId: string, delivery: DeliveryJson, options: { everyClient: boolean }): void {
  terminal.out(summaryLine(terminal, updateId, delivery));
  const rows = delivery.clients.filter((client) => options.everyClient || clientState(client) !== "APPLIED");
  if (rows.length === 0) return;
  const width = Math.max(6, ...rows.map((client) => client.client_id.length));
  if (options.everyClient) terminal.out(terminal.paint(terminal.stdout, "bold", `${"CLIENT".padEnd(width)}  STATE         LATENCY   ERROR`));
  for (const client of rows) {
    const state = clientState(client);
    const latency = state === "PENDING" || state === "DISCONNECTED" || state === "UNCONFIRMED" || client.latency_ms === undefined ? "-" : `${client.latency_ms} ms`;
    const error = client.error ?? "";
    terminal.out(`${client.client_id.padEnd(width)}  ${terminal.paint(terminal.stdout, STATE_COLORS[state], state.padEnd(12))}  ${latency.padEnd(8)}  ${error}`.trimEnd());
  }
}

/**
 * `publish-data-update --bulk FILE|-`: NDJSON in, one OPAL DataUpdate JSON object per line,
 * all sent over one PublishStream. A line that is not a DataUpdate is reported with its
 * number and skipped; a line the server refuses is reported with its number and reason;
 * neither stops the others. The summary says what was published, what was refused and the
 * last position; with --wait, how the deliveries went.
 */
import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import { DeliveryState, type UpdateStatus } from "../../../gen/opal/mesh/v1/delivery_pb.js";
import { type PublishDataUpdateRequest, PublishDataUpdateRequestSchema } from "../../../gen/opal/mesh/v1/trigger_pb.js";
import type { PublishOutcome, StreamPublisher } from "./publish-stream-client.js";
import { ExitCode } from "./shared.js";

export type BulkLine = { line: number; update: PublishDataUpdateRequest } | { line: number; problem: string };

/**
 * One NDJSON line as an update; undefined for a blank line. Fields OPAL does not define
 * are ignored, as OPAL's REST route ignores them; `wait` comes from the flags.
 */
export function parseBulkLine(text: string, line: number, wait: { wait: boolean; timeoutMs: number }): BulkLine | undefined {
  if (text.trim() === "") return undefined;
  let json: unknown;
  try {
    json = JSON.parse(text) as unknown;
  } catch (error) {
    return { line, problem: `not valid JSON (${(error as Error).message})` };
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) return { line, problem: "expected a JSON object (OPAL's DataUpdate: {\"entries\": [...], \"reason\": ...})" };
  try {
    const update = fromJson(PublishDataUpdateRequestSchema, json as JsonValue, { ignoreUnknownFields: true });
    update.wait = wait.wait;
    update.waitTimeoutMs = wait.wait ? wait.timeoutMs : 0;
    return { line, update };
  } catch (error) {
    // protobuf-es names the message and field: "cannot decode field DataSourceEntryInput.dst_path from JSON: expected string, got 5".
    return { line, problem: (error as Error).message.replaceAll("opal.mesh.v1.", "") };
  }
}

/** The lines of a stream, numbered from 1. */
export async function* numberedLines(input: Readable): AsyncGenerator<{ text: string; line: number }> {
  let line = 0;
  for await (const text of createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY })) yield { text, line: ++line };
}

/** "unconfirmed": applied by every client that confirms, sent to some that cannot (OPAL clients without update reports). */
type DeliveryOutcome = "applied" | "failed" | "pending" | "unconfirmed";

function deliveryOutcome(delivery: UpdateStatus): DeliveryOutcome {
  if (delivery.failed > 0) return "failed";
  if (delivery.pending > 0) return "pending";
  if (delivery.unconfirmed > 0) return "unconfirmed";
  return "applied";
}

/** The clients named in the summary as unable to confirm; the rest are counted. */
const MAX_NAMED_UNCONFIRMED = 5;

/** What the run came to, line by line; its summary and exit code. */
export class BulkReport {
  published = 0;
  lastPosition = 0n;
  readonly refused: Array<{ line: number; reason: string }> = [];
  readonly deliveries: Record<DeliveryOutcome, number> = { applied: 0, failed: 0, pending: 0, unconfirmed: 0 };
  /** Every client that could not confirm some update (one line for the run, however many updates). */
  readonly unconfirmedClients = new Set<string>();
  readonly failedLines: Array<{ line: number; reason: string }> = [];

  malformed(line: number, problem: string): void {
    this.refused.push({ line, reason: `not sent: ${problem}` });
  }

  outcome(line: number, outcome: PublishOutcome): void {
    if (outcome.position > 0n) {
      this.published++;
      if (outcome.position > this.lastPosition) this.lastPosition = outcome.position;
    }
    if (outcome.error !== undefined && outcome.position === 0n) {
      this.refused.push({ line, reason: `${outcome.error.code}: ${outcome.error.message}` });
      return;
    }
    if (outcome.error !== undefined) {
      // Published, but its wait failed (or the stream ended before the delivery was known).
      this.deliveries.pending++;
      this.failedLines.push({ line, reason: `delivery unknown: ${outcome.error.code}: ${outcome.error.message}` });
      return;
    }
    if (outcome.delivery === undefined) return;
    const delivered = deliveryOutcome(outcome.delivery);
    this.deliveries[delivered]++;
    for (const client of outcome.delivery.clients) if (client.state === DeliveryState.SENT_UNCONFIRMED) this.unconfirmedClients.add(client.clientId);
    if (delivered === "failed") {
      const clients = outcome.delivery.clients.filter((client) => client.error !== "").map((client) => `${client.clientId}: ${client.error}`);
      this.failedLines.push({ line, reason: `failed by ${outcome.delivery.failed} client(s)${clients.length === 0 ? "" : ` (${clients.slice(0, 3).join("; ")})`}` });
    }
  }

  /** Refusals first (by line), then the totals. */
  lines(waited: boolean): string[] {
    const out = [...this.refused].sort((a, b) => a.line - b.line).map((refusal) => `line ${refusal.line}: refused: ${refusal.reason}`);
    out.push(...[...this.failedLines].sort((a, b) => a.line - b.line).map((failure) => `line ${failure.line}: ${failure.reason}`));
    const total = this.published + this.refused.length;
    out.push(`published ${this.published} of ${total} ${total === 1 ? "update" : "updates"}, ${this.refused.length} refused${this.published > 0 ? `, last position ${this.lastPosition}` : ""}`);
    if (waited) out.push(`delivery: ${this.deliveries.applied} applied by every addressed client, ${this.deliveries.failed} failed by a client, ${this.deliveries.pending} still pending${this.unconfirmedLine()}`);
    return out;
  }

  /** ", 3 sent, unconfirmed by 2 client(s) that cannot confirm (OPAL clients without update reports): a, b" — empty when none. */
  private unconfirmedLine(): string {
    if (this.deliveries.unconfirmed === 0) return "";
    const names = [...this.unconfirmedClients].sort();
    const listed = names.slice(0, MAX_NAMED_UNCONFIRMED).join(", ") + (names.length > MAX_NAMED_UNCONFIRMED ? ` and ${names.length - MAX_NAMED_UNCONFIRMED} more` : "");
    return `, ${this.deliveries.unconfirmed} sent, unconfirmed by ${names.length} client(s) that cannot confirm (OPAL clients without update reports): ${listed}`;
  }

  /** Unconfirmed deliveries are not failures (exit 0; the summary says so). 3 when any line was refused, else 1 when a client failed one, 2 when one was still pending, else 0. */
  exitCode(): number {
    if (this.refused.length > 0) return ExitCode.refused;
    if (this.deliveries.failed > 0) return ExitCode.failed;
    if (this.deliveries.pending > 0) return ExitCode.timeout;
    return ExitCode.ok;
  }
}

/** Sends every line of `input` over `publisher`, waiting for room as the stream asks; resolves once every line is answered. */
export async function publishBulk(input: Readable, publisher: StreamPublisher, wait: { wait: boolean; timeoutMs: number }, report: BulkReport): Promise<void> {
  // Only the unanswered ones: a file of millions of lines holds no more than the stream's bound.
  const unanswered = new Set<Promise<void>>();
  for await (const { text, line } of numberedLines(input)) {
    const parsed = parseBulkLine(text, line, wait);
    if (parsed === undefined) continue;
    if ("problem" in parsed) {
      report.malformed(parsed.line, parsed.problem);
      continue;
    }
    await publisher.room();
    const answer: Promise<void> = publisher.publish(parsed.update).then((outcome) => {
      report.outcome(line, outcome);
      unanswered.delete(answer);
    });
    unanswered.add(answer);
  }
  await Promise.all(unanswered);
}

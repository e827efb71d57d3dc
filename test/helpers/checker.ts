/**
 * The delivery checker: publishes a numbered stream of updates and verifies what each
 * client's OPA holds against an ordered replay.
 *
 * Every update i writes three things:
 * - appends i to /check/log (PATCH): an ordered replay gives [0, 1, …, n-1]; a lost,
 *   repeated or reordered update shows in this list;
 * - sets /check/items/<i> = i and /check/last = i (PUT): idempotent, so they converge
 *   even across a resync, when the baseline (served by the checker's own data source,
 *   which holds the same items) replaces what inline updates built.
 */
import { isDeepStrictEqual } from "node:util";
import { fromJson } from "@bufbuild/protobuf";
import { PublishDataUpdateRequestSchema } from "../../gen/opal/mesh/v1/trigger_pb.js";
import { DataSource } from "./data-source.js";
import type { RunningServer } from "./mesh.js";

/** Anything that can read a client's OPA (an in-process client, or an OPA URL). */
export interface OpaReader {
  read(path: string): Promise<unknown>;
}
import { waitFor } from "./wait.js";

export interface CheckReport {
  log: number[] | undefined;
  last: unknown;
  items: Record<string, number> | undefined;
}

export class DeliveryChecker {
  readonly source = new DataSource();
  private published = 0;
  readonly positions: bigint[] = [];

  /** The baseline entries a server should list for the checker's documents. */
  baselineEntries(): unknown[] {
    return [{ url: this.source.url("/check"), topics: ["policy_data"], dst_path: "/check" }];
  }

  async start(): Promise<this> {
    await this.source.start();
    this.refreshSource();
    return this;
  }

  get count(): number {
    return this.published;
  }

  /** What a baseline load gives: the items and last so far, and the log as a replay gives it. */
  private refreshSource(): void {
    const items: Record<string, number> = {};
    for (let i = 0; i < this.published; i++) items[String(i)] = i;
    this.source.set("/check", { log: Array.from({ length: this.published }, (_, i) => i), items, last: this.published - 1 });
  }

  /** The update number `i` of the stream, in OPAL's DataUpdate JSON (with a stable id). */
  static update(i: number): Record<string, unknown> {
    return {
      id: `check-${i}`,
      entries: [
        { dst_path: "/check/log", save_method: "PATCH", data: [{ op: "add", path: "/-", value: i }] },
        { dst_path: `/check/items/${i}`, data: i },
        { dst_path: "/check/last", data: i },
      ],
    };
  }

  async publish(server: RunningServer, count: number): Promise<void> {
    await this.publishWith(async (json) => (await server.trigger.publishDataUpdate(fromJson(PublishDataUpdateRequestSchema, json as never))).position, count);
  }

  /** Publishes through any path (a trigger-api, straight into Kafka…); `publish` returns the position. */
  async publishWith(publish: (json: Record<string, unknown>, index: number) => Promise<bigint>, count: number): Promise<void> {
    for (let n = 0; n < count; n++) {
      const i = this.published;
      this.positions.push(await publish(DeliveryChecker.update(i), i));
      this.published++;
      this.refreshSource();
    }
  }

  async read(client: OpaReader): Promise<CheckReport> {
    const check = (await client.read("/check")) as { log?: number[]; last?: unknown; items?: Record<string, number> } | undefined;
    return { log: check?.log, last: check?.last, items: check?.items };
  }

  /** Waits until the client converged, then checks its documents equal an ordered replay. */
  async verify(client: OpaReader, options: { log: boolean }, timeoutMs = 60_000): Promise<void> {
    const expectedLast = this.published - 1;
    let last: unknown;
    await waitFor(
      async () => {
        last = (await this.read(client)).last;
        return last === expectedLast;
      },
      { timeoutMs, message: () => `client to reach update ${expectedLast} (at ${JSON.stringify(last)})` },
    );
    const report = await this.read(client);
    const expectedItems: Record<string, number> = {};
    for (let i = 0; i < this.published; i++) expectedItems[String(i)] = i;
    const problems: string[] = [];
    if (!isDeepStrictEqual(report.items, expectedItems)) {
      const missing = Object.keys(expectedItems).filter((key) => report.items?.[key] !== expectedItems[key]);
      problems.push(`items: ${missing.length} lost (${missing.slice(0, 10).join(", ")}…)`);
    }
    if (options.log) {
      const expectedLog = Array.from({ length: this.published }, (_, i) => i);
      if (!isDeepStrictEqual(report.log, expectedLog)) problems.push(`log differs from an ordered replay: ${describeLog(report.log ?? [], this.published)}`);
    }
    if (problems.length > 0) throw new Error(problems.join("; "));
  }
}

function describeLog(log: number[], count: number): string {
  const seen = new Map<number, number>();
  let outOfOrder = 0;
  log.forEach((value, index) => {
    seen.set(value, (seen.get(value) ?? 0) + 1);
    if (index > 0 && value < (log[index - 1] as number)) outOfOrder++;
  });
  const lost = Array.from({ length: count }, (_, i) => i).filter((i) => !seen.has(i)).length;
  const repeated = [...seen.values()].filter((times) => times > 1).length;
  return `${log.length} entries, ${lost} lost, ${repeated} repeated, ${outOfOrder} out of order`;
}

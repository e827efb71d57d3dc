/**
 * The delivery checker: publishes a numbered stream of updates and holds every client's
 * OPA to an exact end state (issue 13: every client holds the fleet's state).
 *
 * Every update i writes three things:
 * - appends i to /check/log (PATCH): an ordered replay gives [0, 1, …, n-1]; a lost,
 *   repeated or reordered update shows in this list;
 * - sets /check/items/<i> = i and /check/last = i (PUT).
 *
 * The baseline source serves a FIXED document at /check (BASELINE): nothing but the log
 * brings the updates to a client. A client that joined late, came back with an empty OPA
 * or was resynced holds them only if the snapshot of the log gave them to it; a baseline
 * reload that wiped them shows as lost items and a short log.
 *
 * `verify` compares /check with the ordered replay, exactly; `same` compares a client's
 * whole managed data (every document under OPA's data root but /system, the client's own
 * status) with that of the client connected from the start, exactly.
 */
import { isDeepStrictEqual } from "node:util";
import { fromJson } from "@bufbuild/protobuf";
import { request } from "undici";
import { PublishDataUpdateRequestSchema } from "../../gen/opal/mesh/v1/trigger_pb.js";
import { DataSource } from "./data-source.js";
import type { RunningServer } from "./mesh.js";
import { waitFor } from "./wait.js";

/** Anything that can read a client's OPA (an in-process client, or an OPA URL). */
export interface OpaReader {
  read(path: string): Promise<unknown>;
}

/** A reader of the OPA at `opaUrl` (its data API). */
export function opaReader(opaUrl: string): OpaReader {
  return {
    async read(path: string) {
      const response = await request(`${opaUrl}/v1/data${path}`);
      return ((await response.body.json()) as { result?: unknown }).result;
    },
  };
}

export interface CheckReport {
  log: number[] | undefined;
  last: unknown;
  items: Record<string, number> | undefined;
}

/** What the checker's baseline source serves at /check, always. */
export const BASELINE: Readonly<{ baseline: string; log: readonly number[]; items: Readonly<Record<string, number>> }> = Object.freeze({ baseline: "fixed", log: [], items: {} });

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
    this.source.set("/check", BASELINE);
    return this;
  }

  get count(): number {
    return this.published;
  }

  /** /check as an ordered replay of the baseline and every update published leaves it. */
  expected(): Record<string, unknown> {
    const items: Record<string, number> = {};
    for (let i = 0; i < this.published; i++) items[String(i)] = i;
    return { ...BASELINE, log: Array.from({ length: this.published }, (_, i) => i), items, ...(this.published > 0 ? { last: this.published - 1 } : {}) };
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

  /** As a new user would: OPAL's `POST /data/config` on the server at `baseUrl`. */
  async publishRest(baseUrl: string, count: number): Promise<void> {
    await this.publishWith(async (json) => {
      const response = await request(`${baseUrl}/data/config`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(json) });
      const body = (await response.body.json()) as { position?: number };
      if (response.statusCode !== 200 || typeof body.position !== "number") throw new Error(`POST /data/config answered ${response.statusCode}: ${JSON.stringify(body)}`);
      return BigInt(body.position);
    }, count);
  }

  /** Publishes through any path (a trigger-api, straight into Kafka…); `publish` returns the position. */
  async publishWith(publish: (json: Record<string, unknown>, index: number) => Promise<bigint>, count: number): Promise<void> {
    for (let n = 0; n < count; n++) {
      const i = this.published;
      this.positions.push(await publish(DeliveryChecker.update(i), i));
      this.published++;
    }
  }

  async read(client: OpaReader): Promise<CheckReport> {
    const check = (await client.read("/check")) as { log?: number[]; last?: unknown; items?: Record<string, number> } | undefined;
    return { log: check?.log, last: check?.last, items: check?.items };
  }

  /**
   * Waits until the client applied the last update (log order: everything before it too),
   * then checks that /check is exactly what an ordered replay gives.
   */
  async verify(client: OpaReader, timeoutMs = 60_000): Promise<void> {
    const expectedLast = this.published - 1;
    let last: unknown;
    await waitFor(
      async () => {
        last = (await this.read(client)).last;
        return last === expectedLast;
      },
      { timeoutMs, message: () => `client to reach update ${expectedLast} (at ${JSON.stringify(last)})` },
    );
    const check = await client.read("/check");
    const expected = this.expected();
    if (isDeepStrictEqual(check, expected)) return;
    const report = await this.read(client);
    const problems: string[] = [];
    const missing = Object.keys(expected.items as object).filter((key) => report.items?.[key] !== Number(key));
    if (missing.length > 0) problems.push(`items: ${missing.length} of ${this.published} lost (${missing.slice(0, 10).join(", ")}…)`);
    if (!isDeepStrictEqual(report.log, expected.log)) problems.push(`log differs from an ordered replay: ${describeLog(report.log ?? [], this.published)}`);
    problems.push(`/check differs from the replay at: ${differences(expected, check).join("; ")}`);
    throw new Error(problems.join("; "));
  }

  /**
   * Every client's whole managed data is the reference's (the client connected from the
   * start), exactly. Call it once the scenario's last write is a checker update: each
   * client is read once it applied that one (so everything before it).
   */
  async same(reference: OpaReader, clients: ReadonlyArray<{ name: string; reader: OpaReader }>, timeoutMs = 60_000): Promise<void> {
    await this.verify(reference, timeoutMs);
    const expected = await managedData(reference);
    const problems: string[] = [];
    for (const client of clients) {
      await this.verify(client.reader, timeoutMs).catch((error: unknown) => problems.push(`${client.name}: ${(error as Error).message}`));
      const data = await managedData(client.reader);
      if (!isDeepStrictEqual(data, expected)) problems.push(`${client.name} differs from the reference at: ${differences(expected, data).join("; ")}`);
    }
    if (problems.length > 0) throw new Error(problems.join("\n"));
  }
}

/** Everything under OPA's data root but /system (the client's own status: position, ids, times). */
export async function managedData(client: OpaReader): Promise<Record<string, unknown>> {
  const all = ((await client.read("")) ?? {}) as Record<string, unknown>;
  const { system: _status, ...managed } = all;
  return managed;
}

/** Where two JSON values differ (the first few paths), with both values, short. */
export function differences(expected: unknown, actual: unknown, path = "", found: string[] = [], limit = 8): string[] {
  if (found.length >= limit || isDeepStrictEqual(expected, actual)) return found;
  const isObject = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value);
  if (isObject(expected) && isObject(actual)) {
    for (const key of new Set([...Object.keys(expected), ...Object.keys(actual)])) differences(expected[key], actual[key], `${path}/${key}`, found, limit);
    return found;
  }
  const short = (value: unknown): string => (value === undefined ? "(absent)" : JSON.stringify(value).slice(0, 80));
  found.push(`${path || "/"}: expected ${short(expected)}, got ${short(actual)}`);
  return found;
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
  const first = log.findIndex((value, index) => value !== index);
  const around = first < 0 ? "" : `; first difference at index ${first}: …${JSON.stringify(log.slice(Math.max(0, first - 3), first + 12))}`;
  return `${log.length} entries, ${lost} lost, ${repeated} repeated, ${outOfOrder} out of order${around}`;
}

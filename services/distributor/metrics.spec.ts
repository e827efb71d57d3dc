import { test } from "node:test";
import assert from "node:assert/strict";
import { Registry } from "../common/telemetry/metrics.js";
import { DistributorMetrics, lagByClient, type LagSource } from "./metrics.js";

function session(clientId: string, sentPosition: bigint, ackedPosition: bigint, deliveredPosition: bigint): LagSource {
  return { clientId, sentPosition, ackedPosition, deliveredPosition, lastReport: undefined };
}

test("lagByClient", async (t) => {
  const cases: Array<[string, bigint, LagSource[], Record<string, bigint>]> = [
    ["caught up", 10n, [session("a", 10n, 10n, 10n)], { a: 0n }],
    ["events not addressed to it do not count", 10n, [session("a", 10n, 4n, 4n)], { a: 0n }],
    ["an event sent and not ACKed yet", 10n, [session("a", 10n, 4n, 7n)], { a: 6n }],
    ["a fresh client that loaded the baseline at the head", 10n, [session("a", 10n, 0n, 0n)], { a: 0n }],
    ["catching up after a resume", 10n, [session("a", 6n, 0n, 0n)], { a: 4n }],
    ["two streams of one client: the best counts", 10n, [session("a", 10n, 4n, 7n), session("a", 10n, 10n, 10n), session("b", 10n, 9n, 10n)], { a: 0n, b: 1n }],
  ];
  for (const [name, head, sessions, expected] of cases) await t.test(name, () => assert.deepEqual(Object.fromEntries(lagByClient(head, sessions)), expected));
});

test("the lag gauge has a series per connected client only, rebuilt at each scrape", async () => {
  const registry = new Registry();
  const sessions = [session("a", 5n, 5n, 5n), session("b", 5n, 2n, 3n)];
  const metrics = new DistributorMetrics(registry, { head: 5n, sessionCount: 2, listSessions: () => sessions });
  const lag = async (): Promise<Record<string, number>> => {
    const metric = await registry.getSingleMetric("opal_mesh_distributor_client_lag_positions")?.get();
    return Object.fromEntries((metric?.values ?? []).map((value) => [String(value.labels.client_id), value.value]));
  };
  assert.deepEqual(await lag(), { a: 0, b: 3 });
  sessions.pop();
  assert.deepEqual(await lag(), { a: 0 });

  metrics.onDelivered("data", 1500, false);
  metrics.onDelivered("data", 20, true);
  const text = await registry.metrics();
  assert.match(text, /opal_mesh_distributor_events_delivered_total\{kind="data"\} 2/);
  assert.match(text, /opal_mesh_distributor_events_delivered_total\{kind="policy"\} 0/);
  assert.match(text, /opal_mesh_distributor_ack_failures_total\{kind="data"\} 1/);
  assert.match(text, /opal_mesh_distributor_delivery_latency_seconds_bucket\{le="0.025",kind="data"\} 1/);
  assert.match(text, /opal_mesh_distributor_delivery_latency_seconds_count\{kind="data"\} 2/);
});

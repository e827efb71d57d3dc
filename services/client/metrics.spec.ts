import { test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { DataSourceEntrySchema, SaveMethod } from "../../gen/opal/mesh/v1/data_pb.js";
import { Registry } from "../common/telemetry/metrics.js";
import type { JobApplier } from "./data/update-pipeline.js";
import { ClientHealth } from "./health.js";
import { ClientMetrics, providerLabel } from "./metrics.js";
import type { PolicyStore } from "./policy-store.js";

const KNOWN = ["HttpFetchProvider", "PostgresFetchProvider"];

function entry(config?: unknown, extra: Partial<{ saveMethod: SaveMethod; dataJson: Uint8Array }> = {}) {
  return create(DataSourceEntrySchema, { url: "https://example.com/x?token=secret", configJson: config === undefined ? new Uint8Array() : Buffer.from(typeof config === "string" ? config : JSON.stringify(config)), ...extra });
}

test("providerLabel", async (t) => {
  const cases: Array<[string, unknown, string]> = [
    ["no config: the default provider", undefined, "HttpFetchProvider"],
    ["config without fetcher", { method: "GET" }, "HttpFetchProvider"],
    ["a known fetcher", { fetcher: "PostgresFetchProvider" }, "PostgresFetchProvider"],
    ["an unknown fetcher never becomes a label", { fetcher: "Made-Up-By-A-Publisher" }, "unknown"],
    ["config that is not JSON", "{", "unknown"],
  ];
  for (const [name, config, expected] of cases) await t.test(name, () => assert.equal(providerLabel(entry(config), KNOWN), expected));
});

function unusedStore(): PolicyStore {
  const fail = (): never => assert.fail("not used");
  return { name: "none", isHealthy: fail, writeData: fail, readData: fail, patch: fail, exists: fail, putPolicy: fail, deletePolicy: fail, listPolicies: fail, close: fail };
}

test("fetches are measured; inline data and abandoned fetches are not", async () => {
  const registry = new Registry();
  const metrics = new ClientMetrics(registry, new ClientHealth(true, true), unusedStore());
  const applier: JobApplier = {
    fetch: async (fetched) => {
      if (fetched.url.includes("fail")) throw new Error("down");
      return fetched.dataJson ?? Buffer.from("{}");
    },
    commit: async () => [],
  };
  const measured = metrics.applier(applier, () => KNOWN);
  await measured.fetch(entry(), new AbortController().signal);
  await measured.fetch(entry(undefined, { dataJson: Buffer.from("1") }), new AbortController().signal);
  await measured.fetch(entry(undefined, { saveMethod: SaveMethod.DELETE }), new AbortController().signal);
  await assert.rejects(measured.fetch(create(DataSourceEntrySchema, { url: "https://fail.example.com/" }), new AbortController().signal), /down/);
  const aborted = new AbortController();
  aborted.abort();
  await assert.rejects(measured.fetch(create(DataSourceEntrySchema, { url: "https://fail.example.com/" }), aborted.signal), /down/);
  const text = await registry.metrics();
  assert.match(text, /opal_mesh_client_fetch_duration_seconds_count\{kind="data",provider="HttpFetchProvider"\} 2/);
  assert.match(text, /opal_mesh_client_fetch_errors_total\{kind="data",provider="HttpFetchProvider"\} 1/);
  assert.doesNotMatch(text, /example\.com/, "no URL in any label");
});

test("reconnects count streams opened after the first", async () => {
  const registry = new Registry();
  const metrics = new ClientMetrics(registry, new ClientHealth(true, true), unusedStore());
  for (const connected of [false, true, true, false, false, true, false, true]) metrics.streamConnection(connected);
  assert.match(await registry.metrics(), /opal_mesh_client_reconnects_total 2/);
});

test("backups: failures are counted, the last success is a timestamp; positions OPA no longer holds are not reported", async () => {
  const registry = new Registry();
  const health = new ClientHealth(true, true);
  health.appliedPosition = 42n;
  const metrics = new ClientMetrics(registry, health, unusedStore());
  assert.match(await registry.metrics(), /opal_mesh_client_backup_failures_total 0/);
  metrics.backupSaved(false);
  metrics.backupSaved(true);
  metrics.backupSaved(false);
  health.backup = { path: "/b", ok: false, failures: 2, lastSuccessAt: "2026-01-01T00:00:00.000Z" };
  let text = await registry.metrics();
  assert.match(text, /opal_mesh_client_backup_failures_total 2/);
  assert.match(text, /opal_mesh_client_backup_last_success_timestamp_seconds 1767225600/);
  assert.match(text, /opal_mesh_client_applied_position 42/);
  assert.match(text, /opal_mesh_client_state_held 1/);
  health.storeState.lose("the inline OPA restarted");
  text = await registry.metrics();
  assert.match(text, /opal_mesh_client_applied_position 0/);
  assert.match(text, /opal_mesh_client_state_held 0/);
});

/**
 * The agent's wiring, with an in-memory stand-in for OPA's REST API (the one OPA-facing
 * part; the real OPA is in test/*.test.ts) and no server: every part is built before
 * anything starts, parts start in dependency order and stop in reverse, and an inline data
 * update goes router → pipeline → one transaction with the status → one ACK.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { DataSourceEntrySchema } from "../../gen/opal/mesh/v1/data_pb.js";
import { AckStatus, WelcomeSchema } from "../../gen/opal/mesh/v1/distributor_pb.js";
import { EventSchema } from "../../gen/opal/mesh/v1/event_pb.js";
import { loadClientConfig } from "../common/config/client-config.js";
import type { Component } from "../common/lifecycle.js";
import { silentLogger } from "../common/logger.js";
import { createMetricsRegistry } from "../common/telemetry/metrics.js";
import { createTracing } from "../common/telemetry/tracing.js";
import { ClientAgent } from "./agent.js";
import { buildClientParts } from "./client-parts.js";
import { type DataWrite, type PatchOperation, type PolicyStore, PolicyStoreError } from "./policy-store.js";
import type { AckFields } from "./sync-state.js";

/** OPA's data API over one JSON tree: JSON Patch add/replace/remove, a `replace` of what is missing refused with 404 as OPA does. */
class MemoryOpa implements PolicyStore {
  readonly name = "memory";
  root: Record<string, unknown> = {};
  readonly patches: PatchOperation[][] = [];
  isHealthy = () => Promise.resolve(true);
  putPolicy = () => Promise.resolve();
  deletePolicy = () => Promise.resolve();
  listPolicies = () => Promise.resolve([]);
  close = () => Promise.resolve();

  readData(path: string): Promise<unknown> {
    return Promise.resolve(this.at(path.split("/").filter(Boolean)));
  }
  exists(path: string): Promise<boolean> {
    return Promise.resolve(this.at(path.split("/").filter(Boolean)) !== undefined);
  }
  writeData(write: DataWrite): Promise<void> {
    return this.patch([{ op: write.method === "DELETE" ? "remove" : "add", path: write.path === "/" ? "" : write.path, value: write.body }]);
  }
  patch(operations: readonly PatchOperation[]): Promise<void> {
    this.patches.push([...operations]);
    for (const { op, path, value } of operations) {
      const parts = path.split("/").slice(1).map((part) => part.replaceAll("~1", "/").replaceAll("~0", "~"));
      const parsed: unknown = value instanceof Uint8Array ? JSON.parse(Buffer.from(value).toString()) : undefined;
      if (parts.length === 0) {
        this.root = parsed as Record<string, unknown>;
        continue;
      }
      const parent = this.at(parts.slice(0, -1)) as Record<string, unknown> | undefined;
      const key = parts.at(-1) as string;
      if (parent === undefined || (op === "replace" && !(key in parent))) return Promise.reject(new PolicyStoreError(`OPA refused PATCH /: 404 ${path} missing`, 404));
      if (op === "remove") delete parent[key];
      else parent[key] = parsed;
    }
    return Promise.resolve();
  }
  private at(parts: readonly string[]): unknown {
    let node: unknown = this.root;
    for (const part of parts) node = typeof node === "object" && node !== null ? (node as Record<string, unknown>)[part] : undefined;
    return node;
  }
}

/** A client with an external OPA (the stand-in) that held position 5 of log-1, no policy updater, and a server that is not there. */
function wired() {
  const config = loadClientConfig({
    OPAL_SERVER_URL: "http://127.0.0.1:9",
    OPAL_INLINE_OPA_ENABLED: "false",
    OPAL_POLICY_STORE_URL: "http://127.0.0.1:8181",
    OPAL_POLICY_UPDATER_ENABLED: "false",
    OPAL_CLIENT_API_SERVER_PORT: "0",
    OPAL_CLIENT_API_SERVER_HOST: "127.0.0.1",
  });
  const opa = new MemoryOpa();
  opa.root = { system: { opal: { log_id: "log-1", position: 5, baseline_loaded: true, ready: true, policy: { hash: "", root_data_keys: [] } } } };
  const logger = silentLogger();
  const options = { config, logger, opaBinary: undefined, moduleBaseDir: process.cwd(), tracing: createTracing(config.telemetry) };
  const parts = buildClientParts({ ...options, plugins: [], registry: createMetricsRegistry(), store: opa });
  const events: string[] = [];
  parts.components = parts.components.map((part): Component => ({
    name: part.name,
    closed: part.closed,
    start: async (signal) => {
      events.push(`start ${part.name}`);
      await part.start(signal);
    },
    stop: async () => {
      events.push(`stop ${part.name}`);
      await part.stop();
    },
  }));
  const acks: AckFields[] = [];
  parts.stream.sendAck = (ack) => void acks.push(ack);
  return { agent: new ClientAgent(parts, options), parts, opa, events, acks };
}

const ORDER = ["tracing", "policy-store", "fetch-providers", "update-reporter", "store-recovery", "update-pipeline", "data-updater", "freshness", "client-api", "health-reports", "stream-session", "liveness-probe"];

test("every part is built before anything starts; they start in dependency order and stop in reverse", async (t) => {
  const { agent, events, opa } = wired();
  assert.deepEqual(events, [], "building starts nothing");
  assert.equal(opa.patches.length, 0, "nor writes to OPA");
  await agent.start(new AbortController().signal);
  // A failed assertion below must not leave the agent listening (the file would not end).
  t.after(() => agent.stop());
  assert.deepEqual(events, ORDER.map((name) => `start ${name}`));
  assert.notEqual(agent.apiPort, 0, "the API listens");
  await agent.stop();
  await agent.stop();
  assert.deepEqual(events.slice(ORDER.length), [...ORDER].reverse().map((name) => `stop ${name}`), "each part stopped once, in reverse");
  assert.deepEqual(await agent.closed, { reason: "stopped" });
});

test("an inline data update: router → pipeline → one transaction with the status → one ACK", async (t) => {
  const { agent, parts, opa, acks } = wired();
  await agent.start(new AbortController().signal);
  t.after(() => agent.stop());
  assert.deepEqual(parts.sync.resumePoint, { logId: "log-1", position: 5n }, "resumes from what OPA holds");

  parts.router.onWelcome(create(WelcomeSchema, { logId: "log-1", headPosition: 5n }), true);
  const entry = create(DataSourceEntrySchema, { dstPath: "/users/bob", topics: ["policy_data"], dataJson: Buffer.from('{"roles":["editor"]}') });
  opa.patches.length = 0;
  parts.router.onEvent(create(EventSchema, { position: 6n, topics: ["policy_data"], payload: { case: "dataUpdate", value: { id: "u-6", reason: "promote bob", entries: [entry] } } }));
  assert.deepEqual(parts.sync.resumePoint, { logId: "log-1", position: 6n }, "received: the resume point moves at once");
  assert.equal(parts.sync.position?.position, 5n, "applied: the durable position waits for the transaction");
  await agent.settled();

  assert.deepEqual(await opa.readData("/users/bob"), { roles: ["editor"] });
  assert.equal(opa.patches.length, 1, "one transaction");
  assert.deepEqual(
    opa.patches[0]?.map((operation) => operation.path),
    ["/users", "/users/bob", "/system/opal"],
    "the data and the status together",
  );
  assert.equal(((await opa.readData("/system/opal")) as { position: number }).position, 6);
  assert.deepEqual(
    acks.map(({ position, updateId, status }) => ({ position, updateId, status })),
    [{ position: 6n, updateId: "u-6", status: AckStatus.APPLIED }],
  );
  assert.equal(parts.health.appliedPosition, 6n);
});

test("OPA found without the status document: everything is forgotten and the client claims nothing", async (t) => {
  const { agent, parts, opa } = wired();
  await agent.start(new AbortController().signal);
  t.after(() => agent.stop());
  delete (opa.root.system as Record<string, unknown>).opal;
  const entry = create(DataSourceEntrySchema, { dstPath: "/x", topics: ["policy_data"], dataJson: Buffer.from("1") });
  parts.router.onEvent(create(EventSchema, { position: 6n, payload: { case: "dataUpdate", value: { id: "u-6", entries: [entry] } } }));
  await agent.settled();
  assert.equal(parts.sync.resumePoint, undefined, "the next stream starts fresh");
  assert.equal(parts.sync.written, false);
  assert.equal(parts.health.storeState.held, false);
  assert.equal(parts.health.isReady(), false);
});

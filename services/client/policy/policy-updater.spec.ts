/**
 * The policy updater against a PolicyService double on a real HTTP listener and an
 * in-memory store: a bundle fetch the server cannot answer yet is retried
 * (OPAL_POLICY_UPDATER_CONN_RETRY), and an announced version answered with the one the
 * store already holds (a replica that has not seen the change) is asked for again, not
 * acknowledged as applied.
 */
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { GetBundleResponseSchema, PolicyBundleSchema, PolicyService } from "../../../gen/opal/mesh/v1/policy_pb.js";
import { GlobSet } from "../../common/globs.js";
import { createLogger } from "../../common/logger.js";
import { ClientHealth } from "../health.js";
import { DataTransactions } from "../data/data-transaction.js";
import { SyncState } from "../sync-state.js";
import type { PolicyStore } from "../policy-store.js";
import { PolicyUpdater } from "./policy-updater.js";

function memoryStore(): PolicyStore & { policies: Map<string, string> } {
  const policies = new Map<string, string>();
  return {
    name: "memory",
    policies,
    isHealthy: () => Promise.resolve(true),
    writeData: () => Promise.resolve(),
    readData: () => Promise.resolve(undefined),
    patch: () => Promise.resolve(),
    exists: () => Promise.resolve(true),
    putPolicy: (id, rego) => Promise.resolve(void policies.set(id, rego)),
    deletePolicy: (id) => Promise.resolve(void policies.delete(id)),
    listPolicies: () => Promise.resolve([...policies].map(([id, raw]) => ({ id, raw }))),
    close: () => Promise.resolve(),
  };
}

async function policyServer(answer: (call: number) => { hash: string } | ConnectError): Promise<{ url: string; calls: () => number; close: () => void }> {
  let calls = 0;
  const server = createServer(
    connectNodeAdapter({
      routes: (router) =>
        router.service(PolicyService, {
          getBundle() {
            const reply = answer(++calls);
            if (reply instanceof ConnectError) throw reply;
            const bundle = create(PolicyBundleSchema, { hash: reply.hash, policyModules: [{ path: "p.rego", rego: `package p\n\nv := "${reply.hash}"\n` }] });
            return create(GetBundleResponseSchema, { bundle });
          },
          refresh: () => ({}),
          getSourceStatus: () => ({}),
        }),
    }),
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, calls: () => calls, close: () => server.close() };
}

/** The sync state the agent gives the updater: its status writes go through the data transactions. */
function syncState(health: ClientHealth, store: PolicyStore): SyncState {
  return new SyncState({ health, clientId: "c", transactions: new DataTransactions(store), sendAck: () => undefined, onLost: () => undefined });
}

function updater(url: string, store: PolicyStore, status: SyncState, health: ClientHealth): PolicyUpdater {
  return new PolicyUpdater({
    serverUrl: () => url,
    token: undefined,
    dirs: ["."],
    scope: "default",
    store,
    status,
    ignore: new GlobSet([]),
    health,
    logger: createLogger({ level: "silent", format: "json" }),
    timeoutMs: 5_000,
    fetchRetry: { attempts: 4, backoff: { initialMs: 1, maxMs: 5, jitter: 0 } },
  });
}

test("a bundle fetch the server cannot answer yet is retried, and then applied", async (t) => {
  const server = await policyServer((call) => (call < 3 ? new ConnectError("the policy source is not ready", Code.Unavailable) : { hash: "v1" }));
  t.after(server.close);
  const health = new ClientHealth(false, true);
  const store = memoryStore();
  const status = syncState(health, store);
  await updater(server.url, store, status, health).sync(new AbortController().signal, "test");
  assert.equal(server.calls(), 3);
  assert.equal(status.policyHash, "v1");
  assert.equal(store.policies.size, 1);
});

test("a refusal is not retried", async (t) => {
  const server = await policyServer(() => new ConnectError("no", Code.PermissionDenied));
  t.after(server.close);
  const health = new ClientHealth(false, true);
  const store = memoryStore();
  const status = syncState(health, store);
  await assert.rejects(updater(server.url, store, status, health).sync(new AbortController().signal, "test"), /no/);
  assert.equal(server.calls(), 1);
});

test("an announced version answered with the one held is asked for again; never there, the event fails", async (t) => {
  let latest = "v1";
  const server = await policyServer(() => ({ hash: latest }));
  t.after(server.close);
  const health = new ClientHealth(false, true);
  const store = memoryStore();
  const status = syncState(health, store);
  const policy = updater(server.url, store, status, health);
  await policy.sync(new AbortController().signal, "baseline");
  assert.equal(status.policyHash, "v1");

  // The replica catches up on the third call.
  const before = server.calls();
  const catchUp = setInterval(() => {
    if (server.calls() - before >= 2) latest = "v2";
  }, 0);
  t.after(() => clearInterval(catchUp));
  await policy.sync(new AbortController().signal, "policy changed to v2", undefined, undefined, "v2");
  assert.equal(status.policyHash, "v2");
  assert.ok(server.calls() - before >= 2, "asked again");

  // An announcement the server never reaches: reported as failed, the held version kept.
  await assert.rejects(policy.sync(new AbortController().signal, "policy changed to v9", undefined, undefined, "v9"), /not the announced v9/);
  assert.equal(status.policyHash, "v2");
  assert.equal(health.report().policy.lastTransaction?.ok, false);
});

/**
 * A client with OPAL_MESH_POLICY_VERIFICATION_KEY: asks for full bundles only, applies
 * those signed by the key, and refuses unsigned, tampered and other-keyed ones before
 * OPA sees them (the last good policy stays, health says why, the sync fails: a NACK).
 */
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { GetBundleResponseSchema, type PolicyBundle, PolicyBundleSchema, PolicyService } from "../../../gen/opal/mesh/v1/policy_pb.js";
import { signPolicyBundle } from "../../common/bundle-signing/policy-bundle-files.js";
import { signingKey, verificationKey } from "../../common/bundle-signing/jws.js";
import { GlobSet } from "../../common/globs.js";
import { createLogger } from "../../common/logger.js";
import { ClientHealth } from "../health.js";
import { DataTransactions } from "../data/data-transaction.js";
import { SyncState } from "../sync-state.js";
import type { PolicyStore } from "../policy-store.js";
import { PolicyUpdater } from "./policy-updater.js";

const SECRET = "the-fleet's-hmac-secret";
const signer = { key: signingKey("HS256", SECRET), keyId: "default" };

function memoryStore(): PolicyStore & { policies: Map<string, string>; data: Map<string, string> } {
  const policies = new Map<string, string>();
  const data = new Map<string, string>();
  return {
    name: "memory",
    policies,
    data,
    isHealthy: () => Promise.resolve(true),
    writeData: (write) => Promise.resolve(void data.set(write.path, Buffer.from(write.body ?? "").toString())),
    readData: () => Promise.resolve(undefined),
    patch: () => Promise.resolve(),
    exists: () => Promise.resolve(true),
    putPolicy: (id, rego) => Promise.resolve(void policies.set(id, rego)),
    deletePolicy: (id) => Promise.resolve(void policies.delete(id)),
    listPolicies: () => Promise.resolve([...policies].map(([id, raw]) => ({ id, raw }))),
    close: () => Promise.resolve(),
  };
}

function bundle(hash: string, sign: boolean): PolicyBundle {
  const built = create(PolicyBundleSchema, {
    hash,
    manifest: ["rbac/policy.rego", "rbac/data.json"],
    policyModules: [{ path: "rbac/policy.rego", packageName: "rbac", rego: `package rbac\n\nversion := "${hash}"\n` }],
    dataModules: [{ path: "rbac", dataJson: Buffer.from(`{"version": "${hash}"}`) }],
  });
  if (sign) built.signaturesJson = signPolicyBundle(built, signer);
  return built;
}

async function policyServer(answer: () => PolicyBundle): Promise<{ url: string; baseHashes: string[]; close: () => void }> {
  const baseHashes: string[] = [];
  const server = createServer(
    connectNodeAdapter({
      routes: (router) =>
        router.service(PolicyService, {
          getBundle(request) {
            baseHashes.push(request.baseHash);
            return create(GetBundleResponseSchema, { bundle: answer() });
          },
          refresh: () => ({}),
          getSourceStatus: () => ({}),
        }),
    }),
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, baseHashes, close: () => server.close() };
}

test("signed bundles apply; unsigned, tampered, delta and other-keyed ones are refused and the last good stays", async (t) => {
  let answer = bundle("v1", true);
  const server = await policyServer(() => answer);
  t.after(server.close);
  const health = new ClientHealth(false, true);
  const store = memoryStore();
  const status = new SyncState({ health, clientId: "c", transactions: new DataTransactions(store), sendAck: () => undefined, onLost: () => undefined });
  const updater = (secret: string): PolicyUpdater =>
    new PolicyUpdater({
      serverUrl: () => server.url,
      token: undefined,
      dirs: ["."],
      scope: "default",
      store,
      status,
      ignore: new GlobSet([]),
      health,
      logger: createLogger({ level: "silent", format: "json" }),
      timeoutMs: 5_000,
      verifier: { key: verificationKey("HS256", secret), keyId: "default" },
    });
  const policy = updater(SECRET);
  const signal = new AbortController().signal;

  await policy.sync(signal, "baseline");
  assert.equal(status.policyHash, "v1");
  assert.match(store.policies.get("rbac/policy.rego") ?? "", /"v1"/);
  assert.equal(store.data.get("/rbac"), '{"version": "v1"}');

  const refused = async (next: PolicyBundle, reason: RegExp, verifier = policy): Promise<void> => {
    answer = next;
    await assert.rejects(verifier.sync(signal, "policy changed"), reason);
    assert.equal(status.policyHash, "v1");
    assert.match(store.policies.get("rbac/policy.rego") ?? "", /"v1"/, "OPA keeps the last good policy");
    assert.equal(store.data.get("/rbac"), '{"version": "v1"}');
    const last = health.report().policy.lastTransaction;
    assert.equal(last?.ok, false);
    assert.match(last?.error ?? "", reason, "health says why");
    assert.ok(!(last?.error ?? "").includes(SECRET));
  };

  await refused(bundle("v2", false), /policy v2 is not signed/);
  const tampered = bundle("v2", true);
  tampered.policyModules[0] = { ...tampered.policyModules[0], rego: "package rbac\n\nallow := true\n" } as (typeof tampered.policyModules)[0];
  await refused(tampered, /rbac\/policy\.rego: digest mismatch/);
  const tamperedData = bundle("v2", true);
  tamperedData.dataModules[0] = { ...tamperedData.dataModules[0], dataJson: Buffer.from('{"version": "evil"}') } as (typeof tamperedData.dataModules)[0];
  await refused(tamperedData, /rbac\/data\.json: digest mismatch/);
  const smuggled = bundle("v2", true);
  smuggled.manifest.push("kept/unsigned.rego");
  await refused(smuggled, /manifest names kept\/unsigned\.rego/);
  await refused(Object.assign(bundle("v2", true), { oldHash: "v1" }), /came as a delta from v1/);
  await refused(bundle("v2", true), /does not verify with the configured verification key/, updater("another-secret"));

  answer = bundle("v2", true);
  await policy.sync(signal, "policy changed");
  assert.equal(status.policyHash, "v2");
  assert.match(store.policies.get("rbac/policy.rego") ?? "", /"v2"/);
  assert.ok(server.baseHashes.every((base) => base === ""), `asked for full bundles only: ${server.baseHashes.join(",")}`);
});

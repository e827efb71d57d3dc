/**
 * Signed policy bundles end to end, on real OPA, real git and a real bundle server: a
 * bundle signed by `opa build --signing-key` verifies and applies, a tampered one is
 * refused and the last good stays; a git policy signed by the server is verified by its
 * clients, and a client holding another key refuses it (a NACK, health says why) and keeps
 * its last good policy.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import { request } from "undici";
import { GitRepo, tempDir } from "./helpers/git-repo.js";
import { decide, type RunningClient, type RunningServer, startClient, startServer, waitReady } from "./helpers/mesh.js";
import { opaBinary } from "./helpers/opa.js";
import { waitFor } from "./helpers/wait.js";

const run = promisify(execFile);

function pemPair(kind: "rsa" | "ec"): { privatePem: string; publicPem: string } {
  const pair = kind === "rsa" ? generateKeyPairSync("rsa", { modulusLength: 2048 }) : generateKeyPairSync("ec", { namedCurve: "P-256" });
  return { privatePem: pair.privateKey.export({ type: "pkcs8", format: "pem" }).toString(), publicPem: pair.publicKey.export({ type: "spki", format: "pem" }).toString() };
}

const policy = (users: string[]): string => `package app.rbac\n\ndefault allow := false\n\nallow if input.user in ${JSON.stringify(users).replace("[", "{").replace("]", "}")}\n`;

async function healthy(client: RunningClient): Promise<{ status: number; error: string }> {
  const response = await request(`${client.apiUrl}/healthy`);
  const report = (await response.body.json()) as { policy?: { lastTransaction?: { error?: string } } };
  return { status: response.statusCode, error: report.policy?.lastTransaction?.error ?? "" };
}

describe("a bundle server's bundles, signed with `opa build --signing-key`", () => {
  const dir = tempDir("opal-mesh-signed-bundles-");
  const keys = pemPair("rsa");
  let tarball: Buffer = Buffer.alloc(0);
  const bundleServer = http.createServer((_request, response) => response.writeHead(200, { "content-type": "application/gzip" }).end(tarball));
  let server: RunningServer;
  let client: RunningClient;
  let builds = 0;

  /** `opa build --signing-key` over these files: the tarball OPA itself would serve. */
  async function opaBuild(files: Record<string, string>): Promise<Buffer> {
    const source = join(dir, `src${++builds}`);
    for (const [path, content] of Object.entries(files)) {
      mkdirSync(join(source, path, ".."), { recursive: true });
      writeFileSync(join(source, path), content);
    }
    const out = join(dir, `bundle${builds}.tar.gz`);
    await run(await opaBinary(), ["build", "--signing-key", join(dir, "private.pem"), "-b", ".", "-o", out], { cwd: source });
    return readFileSync(out);
  }

  before(async () => {
    writeFileSync(join(dir, "private.pem"), keys.privatePem);
    writeFileSync(join(dir, "public.pem"), keys.publicPem);
    tarball = await opaBuild({ "rbac/policy.rego": policy(["alice"]), "rbac/data.json": '{"version": 1}' });
    await new Promise<void>((resolve) => bundleServer.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(bundleServer.address() as AddressInfo).port}/bundles`;
    server = await startServer({ OPAL_POLICY_SOURCE_TYPE: "API", OPAL_POLICY_BUNDLE_URL: url, OPAL_POLICY_REPO_POLLING_INTERVAL: "0.05", OPAL_MESH_POLICY_VERIFICATION_KEY: join(dir, "public.pem") });
    client = await startClient(server.url);
    await waitReady(client);
  });
  after(async () => {
    await client?.stop();
    await server?.stop();
    bundleServer.closeAllConnections();
    bundleServer.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("verifies and applies; a tampered one is refused, the last good stays, and the watcher's health says why", async () => {
    assert.equal(await decide(client, "app/rbac/allow", { user: "alice" }), true);
    assert.deepEqual(await client.read("/rbac"), { version: 1 });
    const good = client.agent.policyHash;

    // v2's tarball with v1's signature: what an attacker on the bundle server could serve.
    const unpacked = join(dir, "tampered");
    mkdirSync(unpacked);
    writeFileSync(join(unpacked, "v1.tar.gz"), tarball);
    await run("tar", ["-xzf", "v1.tar.gz"], { cwd: unpacked });
    rmSync(join(unpacked, "v1.tar.gz"));
    const [moduleFile] = (await run("find", [".", "-name", "policy.rego"], { cwd: unpacked })).stdout.trim().split("\n");
    writeFileSync(join(unpacked, moduleFile ?? ""), policy(["alice", "mallory"]));
    tarball = (await run("tar", ["-czf", "-", "data.json", ".manifest", ".signatures.json", (moduleFile ?? "").replace(/^\.\//, "")], { cwd: unpacked, encoding: "buffer", maxBuffer: 1 << 20 })).stdout;

    const watcher = server.server.watcher;
    await waitFor(() => /has a bad signature: .*policy\.rego: digest mismatch/.test(watcher?.health().message ?? ""), { message: () => `the watcher to refuse the tampered bundle: ${watcher?.health().message}` });
    assert.match(watcher?.health().message ?? "", /bundle http:\/\/127\.0\.0\.1:\d+\/bundles\/bundle\.tar\.gz has a bad signature/);
    assert.ok(!(watcher?.health().message ?? "").includes("PUBLIC KEY"));
    assert.equal(watcher?.hash, good, "the last good version is still served");
    assert.equal(client.agent.policyHash, good);
    assert.equal(await decide(client, "app/rbac/allow", { user: "mallory" }), false);

    tarball = await opaBuild({ "rbac/policy.rego": policy(["alice", "bob"]), "rbac/data.json": '{"version": 2}' });
    await waitFor(() => client.agent.policyHash !== good, { message: "the client to apply the next signed bundle" });
    assert.equal(await decide(client, "app/rbac/allow", { user: "bob" }), true);
    assert.deepEqual(await client.read("/rbac"), { version: 2 });
  });
});

describe("git policy signed by the server, verified by clients", () => {
  const right = pemPair("ec");
  const other = pemPair("ec");
  let repo: GitRepo;
  let signing: RunningServer;
  let rotated: RunningServer;
  let verified: RunningClient;
  let moving: RunningClient;

  before(async () => {
    repo = new GitRepo();
    repo.commit({ "rbac/policy.rego": policy(["alice"]), "rbac/data.json": '{"version": 1}' }, "v1");
    const env = (privatePem: string): Record<string, string> => ({
      OPAL_POLICY_REPO_URL: repo.dir,
      OPAL_POLICY_REPO_MAIN_BRANCH: repo.branch,
      OPAL_POLICY_REPO_CLONE_PATH: tempDir("opal-mesh-clones-"),
      OPAL_POLICY_REPO_POLLING_INTERVAL: "0.1",
      OPAL_MESH_POLICY_SIGNING_KEY: privatePem,
      OPAL_MESH_POLICY_SIGNING_ALG: "ES256",
    });
    signing = await startServer(env(right.privatePem));
    // A replica signing with a key the fleet does not trust (a rotation gone wrong).
    rotated = await startServer(env(other.privatePem));
    const clientEnv = { OPAL_MESH_POLICY_VERIFICATION_KEY: right.publicPem, OPAL_MESH_POLICY_VERIFICATION_ALG: "ES256" };
    verified = await startClient(signing.url, clientEnv);
    moving = await startClient(`${signing.url},${rotated.url}`, { ...clientEnv, OPAL_CLIENT_STAT_ID: "moving-client" });
    await waitReady(verified);
    await waitReady(moving);
  });
  after(async () => {
    await verified?.stop();
    await moving?.stop();
    await signing?.stop();
    await rotated?.stop();
    repo?.remove();
  });

  test("every full bundle carries OPA's signature, and a verifying client applies each commit", async () => {
    const { bundle } = await signing.policy.getBundle({ baseHash: "" });
    const token = (JSON.parse(bundle?.signaturesJson ?? "{}") as { signatures?: string[] }).signatures?.[0] ?? "";
    assert.equal((JSON.parse(Buffer.from(token.split(".")[0] ?? "", "base64url").toString()) as { alg?: string }).alg, "ES256");
    // The real OPA accepts the server's bundle: its files and that signature, as a bundle directory.
    const root = tempDir("opal-mesh-server-signed-");
    const dir = join(root, "bundle");
    try {
      for (const module of bundle?.policyModules ?? []) {
        mkdirSync(join(dir, module.path, ".."), { recursive: true });
        writeFileSync(join(dir, module.path), module.rego);
      }
      for (const data of bundle?.dataModules ?? []) {
        mkdirSync(join(dir, data.path), { recursive: true });
        writeFileSync(join(dir, data.path, "data.json"), data.dataJson);
      }
      writeFileSync(join(dir, ".signatures.json"), bundle?.signaturesJson ?? "");
      writeFileSync(join(root, "verify.pem"), right.publicPem);
      // As a tarball (OPA's directory loader skips dot files, .signatures.json among them).
      const opa = await opaBinary();
      const check = async (): Promise<unknown> => {
        await run("tar", ["-czf", join(root, "bundle.tar.gz"), "-C", dir, ...readdirSync(dir)]);
        return run(opa, ["build", "--verification-key", join(root, "verify.pem"), "--signing-alg", "ES256", "-b", join(root, "bundle.tar.gz"), "-o", join(root, "out.tar.gz")]);
      };
      await check();
      writeFileSync(join(dir, "rbac", "policy.rego"), policy(["mallory"]));
      await assert.rejects(check(), (error: { stdout?: string; stderr?: string }) => /digest mismatch/.test(`${error.stdout ?? ""}${error.stderr ?? ""}`), "and refuses it once a file is changed");
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
    assert.equal(await decide(verified, "app/rbac/allow", { user: "alice" }), true);
    const v2 = repo.commit({ "rbac/policy.rego": policy(["alice", "bob"]) }, "v2");
    await waitFor(() => verified.agent.policyHash === v2, { message: () => `the verifying client at ${v2}: ${JSON.stringify(verified.agent.health.report().policy)}` });
    assert.equal(await decide(verified, "app/rbac/allow", { user: "bob" }), true);
  });

  test("a client whose server signs with another key refuses (a NACK, /healthy says why) and keeps its last good policy", { timeout: 60_000 }, async () => {
    await waitFor(() => moving.agent.policyHash === signing.server.watcher?.hash, { message: "the moving client at the signing server's version" });
    const good = moving.agent.policyHash;
    await signing.stop();
    // On the replica, every bundle it is offered is signed by the untrusted key: the resync on connecting is refused...
    await waitFor(() => /does not verify/.test(moving.agent.health.report().policy.lastTransaction?.error ?? ""), { timeoutMs: 30_000, message: "the moving client to refuse the replica's bundle" });
    // ...and so is the next commit's: the event is ACKed FAILED.
    const next = repo.commit({ "rbac/policy.rego": policy(["alice", "bob", "carol"]) }, "v3");
    let seen: unknown;
    const session = await waitFor(
      async () => {
        const { clients } = await rotated.distributor.listClients({});
        seen = clients.map((candidate) => ({ id: candidate.clientId, error: candidate.lastError, failed: String(candidate.lastFailedPosition) }));
        return clients.find((candidate) => candidate.clientId === "moving-client" && /does not verify with the configured verification key/.test(candidate.lastError));
      },
      { timeoutMs: 40_000, message: () => `a FAILED ack from the moving client: ${JSON.stringify(seen)}` },
    );
    assert.ok(session.lastFailedPosition > 0n);
    assert.equal(moving.agent.policyHash, good, "the last good policy stays");
    assert.notEqual(good, next);
    assert.equal(await decide(moving, "app/rbac/allow", { user: "carol" }), false);
    assert.equal(await decide(moving, "app/rbac/allow", { user: "alice" }), true);
    const health = await healthy(moving);
    assert.equal(health.status, 503);
    assert.match(health.error, /signature does not verify with the configured verification key/);
    assert.ok(!health.error.includes("BEGIN"));
  });
});

/**
 * A bundle server as the policy source: a real local HTTP server serving bundle.tar.gz
 * (made by the system tar) with an ETag; 304 answers cost no rebuild and publish nothing.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { tempDir } from "./helpers/git-repo.js";
import { decide, policyIds, type RunningClient, type RunningServer, startClient, startServer, waitReady } from "./helpers/mesh.js";
import { waitFor } from "./helpers/wait.js";

const TOKEN = "bundle-token";

class BundleServer {
  tarball = Buffer.alloc(0);
  etag = "";
  readonly served: number[] = [];
  private readonly server = http.createServer((request, response) => {
    if (request.url !== "/bundles/bundle.tar.gz" || request.headers.authorization !== `Bearer ${TOKEN}`) {
      response.writeHead(request.url === "/bundles/bundle.tar.gz" ? 401 : 404).end();
      return;
    }
    if (request.headers["if-none-match"] === this.etag) {
      this.served.push(304);
      response.writeHead(304, { etag: this.etag }).end();
      return;
    }
    this.served.push(200);
    response.writeHead(200, { etag: this.etag, "content-type": "application/gzip", "content-length": this.tarball.length }).end(this.tarball);
  });

  publish(files: Record<string, string>): void {
    const dir = tempDir("opal-mesh-bundle-");
    for (const [path, content] of Object.entries(files)) {
      mkdirSync(join(dir, path, ".."), { recursive: true });
      writeFileSync(join(dir, path), content);
    }
    execFileSync("tar", ["-czf", join(dir, "..", `${dir.split("/").pop()}.tar.gz`), "-C", dir, "."]);
    this.tarball = readFileSync(join(dir, "..", `${dir.split("/").pop()}.tar.gz`));
    this.etag = `"${createHash("sha256").update(this.tarball).digest("hex").slice(0, 16)}"`;
    rmSync(dir, { recursive: true, force: true });
  }

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/bundles`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

let bundles: BundleServer;
let server: RunningServer;
let client: RunningClient;

before(async () => {
  bundles = new BundleServer();
  bundles.publish({ "rbac/policy.rego": "package app.rbac\n\nallow if input.user == \"alice\"\n", "rbac/data.json": '{"version": 1}' });
  const url = await bundles.start();
  server = await startServer({ OPAL_POLICY_SOURCE_TYPE: "API", OPAL_POLICY_BUNDLE_URL: url, OPAL_POLICY_BUNDLE_SERVER_TOKEN: TOKEN, OPAL_POLICY_REPO_POLLING_INTERVAL: "0.05" });
  client = await startClient(server.url);
  await waitReady(client);
});

after(async () => {
  await client?.stop();
  await server?.stop();
  await bundles?.stop();
});

test("the bundle's policy and data reach OPA", async () => {
  assert.equal(await decide(client, "app/rbac/allow", { user: "alice" }), true);
  assert.deepEqual(await client.read("/rbac"), { version: 1 });
  assert.deepEqual(await policyIds(client), ["rbac/policy.rego"]);
});

test("304 Not Modified costs no rebuild and publishes nothing", async () => {
  const before = { builds: server.server.watcher?.builds, hash: client.agent.policyHash, notModified: bundles.served.filter((status) => status === 304).length };
  // Let several polls come back 304.
  await waitFor(() => bundles.served.filter((status) => status === 304).length >= before.notModified + 5, { message: "five more polls answered 304" });
  assert.equal(server.server.watcher?.builds, before.builds, "no bundle was built");
  assert.equal(client.agent.policyHash, before.hash);
  assert.equal(bundles.served.filter((status) => status === 200).length, 1, "the tarball was downloaded once");
});

test("a new bundle (new ETag) is fetched, diffed and applied", async () => {
  const before = client.agent.policyHash;
  bundles.publish({ "rbac/policy.rego": "package app.rbac\n\nallow if input.user in {\"alice\", \"bob\"}\n", "rbac/data.json": '{"version": 2}' });
  await waitFor(() => client.agent.policyHash !== before, { message: "the client to move to the new bundle" });
  assert.equal(await decide(client, "app/rbac/allow", { user: "bob" }), true);
  assert.deepEqual(await client.read("/rbac"), { version: 2 });
  const { bundle } = await server.policy.getBundle({ baseHash: before });
  assert.equal(bundle?.oldHash, before, "clients got a delta");
});

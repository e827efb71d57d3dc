/**
 * The policy path on real git repositories and real OPA: clone and initial bundle, new
 * commits by polling and by signed webhook, forged webhooks, delta bundles, ignore globs,
 * a bad commit that never replaces the good policy, directory subscriptions, and an
 * unreachable remote.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { renameSync } from "node:fs";
import { request } from "undici";
import { GitRepo, tempDir } from "./helpers/git-repo.js";
import { decide, policyIds, type RunningClient, type RunningServer, startClient, startServer, waitForData, waitReady } from "./helpers/mesh.js";
import { opaBinary } from "./helpers/opa.js";
import { freePort } from "./helpers/ports.js";
import { waitFor } from "./helpers/wait.js";

const RBAC = `package app.rbac

default allow := false

allow if input.user in data.rbac.admins
`;

function serverEnv(repo: GitRepo, extra: Record<string, string> = {}): Record<string, string> {
  return { OPAL_POLICY_REPO_URL: repo.dir, OPAL_POLICY_REPO_MAIN_BRANCH: repo.branch, OPAL_POLICY_REPO_CLONE_PATH: tempDir("opal-mesh-clones-"), ...extra };
}

async function waitForPolicy(client: RunningClient, hash: string): Promise<void> {
  await waitFor(() => client.agent.policyHash === hash, { message: () => `client policy ${hash}, has ${client.agent.policyHash} (${JSON.stringify(client.agent.health.report().policy)})` });
}

describe("a git repo polled for new commits", () => {
  let repo: GitRepo;
  let server: RunningServer;
  let client: RunningClient;

  before(async () => {
    repo = new GitRepo();
    repo.commit({ "rbac/policy.rego": RBAC, "rbac/data.json": JSON.stringify({ admins: ["alice"] }), "README.md": "not policy" }, "initial");
    server = await startServer(serverEnv(repo, { OPAL_POLICY_REPO_POLLING_INTERVAL: "0.1", OPAL_BUNDLE_IGNORE: "tests/**" }));
    client = await startClient(server.url);
    await waitReady(client);
  });

  after(async () => {
    await client?.stop();
    await server?.stop();
    repo?.remove();
  });

  test("the clone's bundle reaches OPA and its hash is recorded in OPA", async () => {
    assert.equal(await decide(client, "app/rbac/allow", { user: "alice" }), true);
    assert.equal(await decide(client, "app/rbac/allow", { user: "bob" }), false);
    assert.deepEqual(((await client.read("/system/opal")) as { policy: unknown }).policy, { hash: repo.head(), root_data_keys: [] });
    assert.deepEqual(await policyIds(client), ["rbac/policy.rego"]);
  });

  test("a commit is picked up by polling and changes the decision", async () => {
    const sha = repo.commit({ "rbac/data.json": JSON.stringify({ admins: ["alice", "bob"] }) }, "add bob");
    await waitForPolicy(client, sha);
    assert.equal(await decide(client, "app/rbac/allow", { user: "bob" }), true);
  });

  test("delta bundles: add, modify, rename and delete modules", async () => {
    const added = repo.commit({ "abac/policy.rego": "package app.abac\n\nallow if input.level > 3\n", "tests/policy_test.rego": "package app.tests\n\ntest_x if true\n" }, "add abac");
    await waitForPolicy(client, added);
    // tests/** is in OPAL_BUNDLE_IGNORE.
    assert.deepEqual(await policyIds(client), ["abac/policy.rego", "rbac/policy.rego"]);
    assert.equal(await decide(client, "app/abac/allow", { level: 5 }), true);

    const delta = await server.policy.getBundle({ baseHash: added });
    assert.equal(delta.bundle?.hash, added, "a client at the head gets an empty delta");
    assert.equal(delta.bundle?.policyModules.length, 0);

    const modified = repo.commit({ "abac/policy.rego": "package app.abac\n\nallow if input.level > 7\n" }, "stricter");
    await waitForPolicy(client, modified);
    assert.equal(await decide(client, "app/abac/allow", { level: 5 }), undefined);

    const renamed = repo.commit({ "abac/policy.rego": null, "abac/rules.rego": "package app.abac\n\nallow if input.level > 7\n" }, "rename");
    await waitForPolicy(client, renamed);
    assert.deepEqual(await policyIds(client), ["abac/rules.rego", "rbac/policy.rego"]);
    assert.equal(await decide(client, "app/abac/allow", { level: 9 }), true);

    const { bundle } = await server.policy.getBundle({ baseHash: modified });
    assert.equal(bundle?.oldHash, modified);
    assert.deepEqual(bundle?.policyModules.map((module) => module.path), ["abac/rules.rego"]);
    assert.deepEqual(bundle?.deletedFiles?.policyModules, ["abac/policy.rego"]);

    const deleted = repo.commit({ "abac/rules.rego": null }, "drop abac");
    await waitForPolicy(client, deleted);
    assert.deepEqual(await policyIds(client), ["rbac/policy.rego"]);
  });

  test("an earlier version is served by its hash (full, or a delta between two versions); an unknown one is NotFound", async () => {
    const before = repo.commit({ "pinned/policy.rego": "package app.pinned\n\nversion := 1\n" }, "pinned v1");
    await waitForPolicy(client, before);
    const after = repo.commit({ "pinned/policy.rego": "package app.pinned\n\nversion := 2\n" }, "pinned v2");
    await waitForPolicy(client, after);
    const old = await server.policy.getBundle({ version: before });
    assert.equal(old.bundle?.hash, before);
    assert.match(old.bundle?.policyModules.find((module) => module.path === "pinned/policy.rego")?.rego ?? "", /version := 1/);
    const back = await server.policy.getBundle({ version: before, baseHash: after });
    assert.equal(back.bundle?.oldHash, after, "a delta back to the earlier version");
    assert.match(back.bundle?.policyModules.map((module) => module.rego).join("") ?? "", /version := 1/);
    assert.equal((await server.policy.getBundle({})).bundle?.hash, after, "without a version: the current one");
    await assert.rejects(server.policy.getBundle({ version: "0".repeat(40) }), /policy version "0{40}" is not one git .* has/);
  });

  test("a root data.json is merged key by key and never wipes other data", async () => {
    await server.trigger.publishDataUpdate({ entries: [{ dstPath: "/from_source", topics: ["policy_data"], data: { kind: { case: "stringValue", value: "kept" } } }] });
    await waitForData(client, "/from_source", "kept");
    const sha = repo.commit({ "data.json": JSON.stringify({ flags: { beta: true }, limits: { max: 3 } }) }, "root data");
    await waitForPolicy(client, sha);
    assert.deepEqual(await client.read("/flags"), { beta: true });
    assert.deepEqual(await client.read("/limits"), { max: 3 });
    const changed = repo.commit({ "data.json": JSON.stringify({ flags: { beta: false } }) }, "drop limits");
    await waitForPolicy(client, changed);
    assert.equal(await client.read("/limits"), undefined);
    const removed = repo.commit({ "data.json": null }, "no root data");
    await waitForPolicy(client, removed);
    assert.equal(await client.read("/flags"), undefined);
    assert.equal(await client.read("/from_source"), "kept", "data from other sources survived");
  });

  test("a data.json change and removal update the data tree", async () => {
    const sha = repo.commit({ "teams/data.json": JSON.stringify({ platform: ["carol"] }) }, "teams");
    await waitForPolicy(client, sha);
    assert.deepEqual(await client.read("/teams"), { platform: ["carol"] });
    const removed = repo.commit({ "teams/data.json": null }, "no teams");
    await waitForPolicy(client, removed);
    assert.equal(await client.read("/teams"), undefined);
  });

  test("a commit that does not compile never replaces the good policy; the fix recovers", async () => {
    const good = client.agent.policyHash;
    const broken = repo.commit({ "rbac/policy.rego": `${RBAC}\nallow if {{{ broken\n`, "rbac/extra.rego": "package app.extra\n\nx := 1\n" }, "broken");
    // The client ACKs the event FAILED, with OPA's error text.
    const session = await waitFor(
      async () => (await server.distributor.listClients({})).clients.find((candidate) => candidate.lastError !== "" && candidate.lastFailedPosition > 0n),
      { message: "a FAILED ack for the broken commit" },
    );
    assert.match(session.lastError, /rego_parse_error|parse error/);
    // OPA still answers with the last good policy, and nothing of the bad commit is in it.
    assert.equal(client.agent.policyHash, good);
    assert.equal(await decide(client, "app/rbac/allow", { user: "alice" }), true);
    assert.ok(!(await policyIds(client)).includes("rbac/extra.rego"), "the module added with the broken commit was rolled back");
    const health = await request(`${client.apiUrl}/healthy`);
    const report = (await health.body.json()) as { policy: { lastTransaction: { ok: boolean; error: string } } };
    assert.equal(health.statusCode, 503);
    assert.match(report.policy.lastTransaction.error, /refused policy/);
    assert.notEqual(broken, good);

    const fixed = repo.commit({ "rbac/policy.rego": RBAC }, "fix");
    await waitForPolicy(client, fixed);
    assert.ok((await policyIds(client)).includes("rbac/extra.rego"));
    const healthy = await request(`${client.apiUrl}/healthy`);
    assert.equal(healthy.statusCode, 200);
    await healthy.body.dump();
  });
});

describe("webhooks", () => {
  const secret = "webhook-secret";
  let repo: GitRepo;
  let server: RunningServer;
  let client: RunningClient;

  before(async () => {
    repo = new GitRepo();
    repo.commit({ "rbac/policy.rego": RBAC, "rbac/data.json": JSON.stringify({ admins: ["alice"] }) }, "initial");
    server = await startServer(serverEnv(repo, { OPAL_POLICY_REPO_WEBHOOK_SECRET: secret }));
    client = await startClient(server.url);
    await waitReady(client);
  });

  after(async () => {
    await client?.stop();
    await server?.stop();
    repo?.remove();
  });

  function push(signatureSecret: string): Promise<{ status: number; body: unknown }> {
    const body = JSON.stringify({ ref: `refs/heads/${repo.branch}`, repository: { clone_url: repo.dir, full_name: "org/policy" } });
    const signature = `sha256=${createHmac("sha256", signatureSecret).update(body).digest("hex")}`;
    return request(`${server.url}/webhook`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-github-event": "push", "x-hub-signature-256": signature },
      body,
    }).then(async (response) => ({ status: response.statusCode, body: await response.body.json() }));
  }

  test("a forged webhook is rejected with 401 and changes nothing", async () => {
    const before = client.agent.policyHash;
    const sha = repo.commit({ "rbac/data.json": JSON.stringify({ admins: ["mallory"] }) }, "forged");
    const response = await push("not-the-secret");
    assert.equal(response.status, 401);
    // Nothing polls this server: only a genuine webhook would make it fetch.
    assert.equal((await server.policy.getSourceStatus({})).hash, before);
    assert.equal(client.agent.policyHash, before);
    assert.notEqual(sha, before);
  });

  test("a signed push webhook makes the server fetch, and the client applies the commit", async () => {
    const sha = repo.head();
    const response = await push(secret);
    assert.equal(response.status, 200);
    assert.equal((response.body as { status: string }).status, "ok");
    await waitForPolicy(client, sha);
    assert.equal(await decide(client, "app/rbac/allow", { user: "mallory" }), true);
  });
});

test("two clients subscribed to different directories get only their directories", async () => {
  const repo = new GitRepo();
  repo.commit({ "rbac/policy.rego": RBAC, "abac/policy.rego": "package app.abac\n\nallow if input.level > 3\n", "shared/data.json": "{}" }, "initial");
  const server = await startServer(serverEnv(repo, { OPAL_POLICY_REPO_POLLING_INTERVAL: "0.1" }));
  const rbacOnly = await startClient(server.url, { OPAL_POLICY_SUBSCRIPTION_DIRS: "rbac" });
  const abacOnly = await startClient(server.url, { OPAL_POLICY_SUBSCRIPTION_DIRS: "abac" });
  try {
    await Promise.all([waitReady(rbacOnly), waitReady(abacOnly)]);
    assert.deepEqual(await policyIds(rbacOnly), ["rbac/policy.rego"]);
    assert.deepEqual(await policyIds(abacOnly), ["abac/policy.rego"]);
    const rbacHashBefore = rbacOnly.agent.policyHash;
    const sha = repo.commit({ "abac/policy.rego": "package app.abac\n\nallow if input.level > 1\n" }, "abac only");
    await waitForPolicy(abacOnly, sha);
    assert.equal(await decide(abacOnly, "app/abac/allow", { level: 2 }), true);
    // The rbac client was not addressed by the abac change: no event, no new policy.
    assert.equal(rbacOnly.agent.policyHash, rbacHashBefore);
    assert.deepEqual(await policyIds(rbacOnly), ["rbac/policy.rego"]);
  } finally {
    await Promise.all([rbacOnly.stop(), abacOnly.stop()]);
    await server.stop();
    repo.remove();
  }
});

test("an unreachable remote shows in health while the last good policy keeps being served", async () => {
  const repo = new GitRepo();
  repo.commit({ "rbac/policy.rego": RBAC, "rbac/data.json": JSON.stringify({ admins: ["alice"] }) }, "initial");
  const server = await startServer(serverEnv(repo, { OPAL_POLICY_REPO_POLLING_INTERVAL: "0.1" }));
  const client = await startClient(server.url);
  const moved = `${repo.dir}-away`;
  try {
    await waitReady(client);
    renameSync(repo.dir, moved);
    const report = await waitFor(
      async () => {
        const response = await request(`${server.url}/healthcheck`);
        const body = (await response.body.json()) as { components: Array<{ component: string; state: string; message: string }> };
        const watcher = body.components.find((component) => component.component === "policy-watcher");
        return watcher?.state === "WARN" ? watcher : undefined;
      },
      { message: "the policy-watcher to report the unreachable remote" },
    );
    assert.match(report.message, /failed/);
    assert.match(report.message, /serving [0-9a-f]{40}/);
    // A new client still gets the last good policy.
    const late = await startClient(server.url);
    try {
      await waitReady(late);
      assert.equal(await decide(late, "app/rbac/allow", { user: "alice" }), true);
    } finally {
      await late.stop();
    }
    renameSync(moved, repo.dir);
    const sha = repo.commit({ "rbac/data.json": JSON.stringify({ admins: ["alice", "dave"] }) }, "back");
    await waitForPolicy(client, sha);
    await waitForData(client, "/rbac/admins", ["alice", "dave"]);
  } finally {
    await client.stop();
    await server.stop();
    repo.remove();
  }
});

test("manifest order is followed, and a module that needs one loaded later is retried", async () => {
  const repo = new GitRepo();
  // app.rego calls a function from lib.rego, but the manifest loads it first: OPA refuses
  // it until lib.rego is in, so the client must retry it after the others.
  repo.commit(
    {
      ".manifest": "app\nlib/lib.rego\n",
      "app/.manifest": "z.rego\napp.rego\n",
      "app/app.rego": "package app.main\n\nallow if data.lib.is_admin(input.user)\n",
      "app/z.rego": "package app.z\n\nz := 1\n",
      "lib/lib.rego": "package lib\n\nis_admin(user) if user == \"alice\"\n",
      "a_unlisted.rego": "package unlisted\n\nu := 1\n",
    },
    "initial",
  );
  const server = await startServer(serverEnv(repo));
  const client = await startClient(server.url);
  try {
    await waitReady(client);
    const { bundle } = await server.policy.getBundle({});
    assert.deepEqual(
      bundle?.policyModules.map((module) => module.path),
      ["app/z.rego", "app/app.rego", "lib/lib.rego", "a_unlisted.rego"],
      "nested manifest order first, then unlisted files",
    );
    assert.equal(await decide(client, "app/main/allow", { user: "alice" }), true);
    assert.deepEqual(await policyIds(client), ["a_unlisted.rego", "app/app.rego", "app/z.rego", "lib/lib.rego"]);
  } finally {
    await client.stop();
    await server.stop();
    repo.remove();
  }
});

test("clients asking for the same bundle cost one build (the distributor caches by version)", async () => {
  const repo = new GitRepo();
  repo.commit({ "rbac/policy.rego": RBAC }, "initial");
  const server = await startServer(serverEnv(repo, { OPAL_POLICY_REPO_POLLING_INTERVAL: "0.1" }));
  const clients: RunningClient[] = [];
  try {
    for (let index = 0; index < 4; index++) clients.push(await startClient(server.url));
    await Promise.all(clients.map((client) => waitReady(client)));
    assert.equal(server.server.watcher?.builds, 1, "four clients, one full-bundle build");
    const sha = repo.commit({ "rbac/policy.rego": RBAC.replace("data.rbac.admins", "data.rbac.owners") }, "change");
    await Promise.all(clients.map((client) => waitForPolicy(client, sha)));
    assert.equal(server.server.watcher?.builds, 2, "four clients, one delta build");
  } finally {
    await Promise.all(clients.map((client) => client.stop()));
    await server.stop();
    repo.remove();
  }
});

test("a full bundle removes stale modules but keeps system.* and ignored ones; a restarted client asks for a delta", async () => {
  const repo = new GitRepo();
  repo.commit({ "rbac/policy.rego": RBAC }, "initial");
  const server = await startServer(serverEnv(repo, { OPAL_POLICY_REPO_POLLING_INTERVAL: "0.1" }));
  // An external OPA that already holds modules from elsewhere.
  const port = await freePort();
  const opa = spawn(await opaBinary(), ["run", "--server", `--addr=127.0.0.1:${port}`, "--log-level=error"], { stdio: "ignore" });
  const opaUrl = `http://127.0.0.1:${port}`;
  const put = async (id: string, rego: string): Promise<void> => {
    await waitFor(async () => (await request(`${opaUrl}/v1/policies/${id}`, { method: "PUT", body: rego })).statusCode === 200, { message: `PUT ${id}` });
  };
  const env = { OPAL_INLINE_OPA_ENABLED: "false", OPAL_POLICY_STORE_URL: opaUrl, OPAL_POLICY_STORE_POLICY_PATHS_TO_IGNORE: "keep/**" };
  let client: RunningClient | undefined;
  try {
    await put("stale.rego", "package stale\n\nx := 1\n");
    await put("system/authz.rego", "package system.authz\n\ndefault allow := true\n");
    await put("keep/me.rego", "package keep\n\ny := 1\n");
    client = await startClient(server.url, env);
    await waitReady(client);
    assert.deepEqual(await policyIds(client), ["keep/me.rego", "rbac/policy.rego", "system/authz.rego"]);
    const first = client.agent.policyHash;
    await client.stop();
    client = undefined;

    // While the client is away the repo moves on; back, it knows its version from OPA.
    const sha = repo.commit({ "rbac/policy.rego": RBAC.replace("admins", "owners") }, "while away");
    await waitFor(async () => (await server.policy.getSourceStatus({})).hash === sha, { message: "the server to see the new commit" });
    const deltasBefore = server.server.watcher?.deltaBuilds ?? 0;
    client = await startClient(server.url, env);
    await waitForPolicy(client, sha);
    assert.notEqual(first, sha);
    assert.ok((server.server.watcher?.deltaBuilds ?? 0) > deltasBefore, "the restarted client got a delta from the version recorded in OPA");
  } finally {
    await client?.stop();
    await server.stop();
    opa.kill();
    repo.remove();
  }
});

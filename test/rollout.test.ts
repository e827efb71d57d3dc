/**
 * Staged policy rollout (real OPA, real git, the embedded server): with
 * OPAL_MESH_ROLLOUT_CANARY_LABELS, a new commit reaches the canaries only; clients that
 * start fresh mid-rollout get the version meant for them (the snapshot says a canary
 * stage is under way; the server's default is the stable version); promotion and
 * rollback by hand are events on the log that every client follows; a rolled-back version
 * is not offered again until the source moves on.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { authEnv, call, issueToken, rsaKeys } from "./helpers/auth.js";
import { GitRepo, tempDir } from "./helpers/git-repo.js";
import { decide, type RunningClient, type RunningServer, startClient, startServer, waitReady } from "./helpers/mesh.js";
import { waitFor } from "./helpers/wait.js";

const run = promisify(execFile);
const BIN = fileURLToPath(new URL("../bin/opal-mesh.js", import.meta.url));
const policy = (version: number): string => `package app.rollout\n\nversion := ${version}\n`;

describe("a staged rollout to canaries chosen by label, promoted and rolled back by hand", () => {
  const keys = rsaKeys();
  const repo = new GitRepo();
  let server: RunningServer;
  let admin: string;
  const clients = new Map<string, RunningClient>();
  const versions: string[] = [];

  const start = async (id: string): Promise<RunningClient> => {
    const token = await issueToken(server.url, { type: "client" });
    const client = await startClient(server.url, { OPAL_CLIENT_STAT_ID: id, OPAL_CLIENT_TOKEN: token, ...(id.startsWith("canary") ? { OPAL_MESH_CLIENT_LABELS: "canary=true,zone=eu" } : { OPAL_MESH_CLIENT_LABELS: "zone=eu" }) });
    clients.set(id, client);
    await waitReady(client);
    return client;
  };
  const versionOf = async (client: RunningClient): Promise<unknown> => decide(client, "app/rollout/version", {});
  const expectVersions = async (expected: Record<string, number>, why: string): Promise<void> => {
    let seen: Record<string, unknown> = {};
    await waitFor(
      async () => {
        const pairs = await Promise.all(Object.keys(expected).map(async (id): Promise<[string, unknown]> => [id, await versionOf(clients.get(id) as RunningClient)]));
        seen = Object.fromEntries(pairs);
        return Object.entries(expected).every(([id, version]) => seen[id] === version);
      },
      { timeoutMs: 30_000, message: () => `${why}: expected ${JSON.stringify(expected)}, saw ${JSON.stringify(seen)}` },
    );
  };
  /** Every client has applied everything on the log so far (so what it holds is what it will hold). */
  const settled = async (): Promise<void> => {
    // The canaries just applied the step: its position is the head every client must reach.
    const head = [...clients.values()].reduce((max, client) => (client.agent.health.appliedPosition > max ? client.agent.health.appliedPosition : max), 0n);
    await waitFor(() => [...clients.values()].every((client) => client.agent.health.appliedPosition >= head), {
      timeoutMs: 30_000,
      message: () => `every client at ${head}: ${[...clients.entries()].map(([id, client]) => `${id}@${client.agent.health.appliedPosition}`).join(", ")}`,
    });
  };
  const rollout = async (action?: string): Promise<{ status: number; json: Record<string, unknown> }> => {
    const answer = await call(`${server.url}/policy/rollout${action === undefined ? "" : `/${action}`}`, { method: action === undefined ? "GET" : "POST", token: admin });
    return { status: answer.status, json: answer.json as Record<string, unknown> };
  };

  before(async () => {
    versions.push(repo.commit({ "app/rollout.rego": policy(1) }, "v1"));
    server = await startServer({
      ...authEnv(keys),
      OPAL_POLICY_REPO_URL: repo.dir,
      OPAL_POLICY_REPO_MAIN_BRANCH: repo.branch,
      OPAL_POLICY_REPO_CLONE_PATH: tempDir("opal-mesh-clones-"),
      OPAL_POLICY_REPO_POLLING_INTERVAL: "0.1",
      OPAL_MESH_ROLLOUT_CANARY_LABELS: "canary=true",
      OPAL_MESH_ROLLOUT_SOAK_SECONDS: "3600",
    });
    admin = await issueToken(server.url, { type: "datasource" });
    for (const id of ["canary-1", "canary-2", "stable-1", "stable-2"]) await start(id);
  });

  after(async () => {
    for (const client of clients.values()) await client.stop();
    await server?.stop();
    repo.remove();
  });

  test("the first version goes to everyone; a new one to the canaries only", async () => {
    await expectVersions({ "canary-1": 1, "canary-2": 1, "stable-1": 1, "stable-2": 1 }, "v1 everywhere");
    versions.push(repo.commit({ "app/rollout.rego": policy(2) }, "v2"));
    await expectVersions({ "canary-1": 2, "canary-2": 2 }, "v2 on the canaries");
    await settled();
    assert.equal(await versionOf(clients.get("stable-1") as RunningClient), 1);
    assert.equal(await versionOf(clients.get("stable-2") as RunningClient), 1);
    const status = await rollout();
    assert.equal(status.status, 200);
    assert.equal(status.json.stable, versions[0]);
    assert.deepEqual((status.json.rollout as Record<string, unknown>).candidate, versions[1]);
    assert.match(String((status.json.rollout as Record<string, unknown>).stage), /^(canary|soaking)$/);
    // The dashboard shows it: the candidate, the stable version, who the canaries are, who holds which.
    type Dashboard = { rollout: Record<string, unknown> | null; clients: Array<{ client_id: string; policy_hash: string }> };
    const dashboard = async (): Promise<Dashboard> => (await call(`${server.url}/dashboard/api/state`, { token: admin })).json as Dashboard;
    const shown = await dashboard();
    assert.deepEqual(shown.rollout && { candidate: shown.rollout.candidate, stable: shown.rollout.stable, canaries: shown.rollout.canaries }, { candidate: versions[1], stable: versions[0], canaries: "canary=true" });
    const expected = { "canary-1": versions[1], "canary-2": versions[1], "stable-1": versions[0], "stable-2": versions[0] };
    let holding: Record<string, string> = {};
    await waitFor(
      async () => {
        holding = Object.fromEntries((await dashboard()).clients.map((client) => [client.client_id, client.policy_hash]));
        return JSON.stringify(holding) === JSON.stringify(expected);
      },
      { timeoutMs: 15_000, message: () => `the dashboard's policy column: ${JSON.stringify(holding)}` },
    );
  });

  test("clients starting fresh mid-rollout get the version meant for them", async () => {
    await start("stable-late");
    await start("canary-late");
    await expectVersions({ "stable-late": 1, "canary-late": 2 }, "late joiners");
  });

  test("promoted by hand (the CLI): everyone takes the candidate, and it is the default from then on", async () => {
    const cli = (action: string) => run(process.execPath, [BIN, "rollout", action, "--server-url", server.url, "--token", admin], { encoding: "utf8" });
    const shown = await cli("status");
    assert.match(shown.stdout, new RegExp(`rollout  ${versions[1]} → soaking \\(canaries: canary=true`));
    assert.match(shown.stdout, /canary-1 +applied +healthy/);
    assert.match((await cli("promote")).stdout, / → promoted /);
    await expectVersions({ "canary-1": 2, "canary-2": 2, "stable-1": 2, "stable-2": 2, "stable-late": 2, "canary-late": 2 }, "v2 everywhere after promotion");
    assert.equal((await rollout()).json.stable, versions[1]);
    assert.equal((await rollout("promote")).status, 409, "nothing under way any more");
  });

  test("rolled back by hand: the canaries go back, the others never saw it, and it is not offered again", async () => {
    versions.push(repo.commit({ "app/rollout.rego": policy(3) }, "v3"));
    await expectVersions({ "canary-1": 3, "canary-2": 3, "canary-late": 3 }, "v3 on the canaries");
    await settled();
    assert.equal(await versionOf(clients.get("stable-1") as RunningClient), 2);
    const rolledBack = await rollout("rollback");
    assert.equal(rolledBack.status, 200, JSON.stringify(rolledBack.json));
    assert.equal(rolledBack.json.rejected, versions[2]);
    await expectVersions({ "canary-1": 2, "canary-2": 2, "canary-late": 2, "stable-1": 2, "stable-2": 2 }, "back to v2");
    // A client starting now gets the stable version, though the repo's head is the rejected one.
    await start("canary-after");
    await expectVersions({ "canary-after": 2 }, "the rejected version is not offered");
    // The source moves on: a new rollout.
    versions.push(repo.commit({ "app/rollout.rego": policy(4) }, "v4"));
    await expectVersions({ "canary-1": 4, "canary-after": 4 }, "v4 on the canaries");
    await settled();
    assert.equal(await versionOf(clients.get("stable-2") as RunningClient), 2);
  });

  test("bad requests are refused naming what is wrong; the rollout API needs a datasource token", async () => {
    assert.equal((await rollout("explode")).status, 404);
    const anonymous = await call(`${server.url}/policy/rollout/promote`, { method: "POST" });
    assert.equal(anonymous.status, 401);
  });
});

describe("a staged rollout that runs by itself: 10 clients, 2 canaries by label", () => {
  const repo = new GitRepo();
  let server: RunningServer;
  const clients = new Map<string, RunningClient>();
  const ids = ["canary-a", "canary-b", ...Array.from({ length: 8 }, (_unused, index) => `edge-${index}`)];
  const versionOf = async (client: RunningClient): Promise<unknown> => decide(client, "app/rollout/version", {});
  const all = async (): Promise<Record<string, unknown>> => Object.fromEntries(await Promise.all(ids.map(async (id): Promise<[string, unknown]> => [id, await versionOf(clients.get(id) as RunningClient)])));
  const expectAll = async (expected: (id: string) => number, why: string): Promise<void> => {
    let seen: Record<string, unknown> = {};
    await waitFor(
      async () => {
        seen = await all();
        return ids.every((id) => seen[id] === expected(id));
      },
      { timeoutMs: 30_000, message: () => `${why}: saw ${JSON.stringify(seen)}` },
    );
  };
  const status = async (): Promise<Record<string, unknown>> => (await call(`${server.url}/policy/rollout`)).json as Record<string, unknown>;

  before(async () => {
    repo.commit({ "app/rollout.rego": policy(1) }, "v1");
    server = await startServer({
      OPAL_POLICY_REPO_URL: repo.dir,
      OPAL_POLICY_REPO_MAIN_BRANCH: repo.branch,
      OPAL_POLICY_REPO_CLONE_PATH: tempDir("opal-mesh-clones-"),
      OPAL_POLICY_REPO_POLLING_INTERVAL: "0.1",
      OPAL_MESH_ROLLOUT_CANARY_LABELS: "canary=true",
      OPAL_MESH_ROLLOUT_SOAK_SECONDS: "1",
    });
    await Promise.all(
      ids.map(async (id) => {
        // Modules under local/ are the client's own (never removed): canary-a's makes one version fail to compile there.
        const client = await startClient(server.url, { OPAL_CLIENT_STAT_ID: id, OPAL_POLICY_STORE_POLICY_PATHS_TO_IGNORE: "local/**", ...(id.startsWith("canary") ? { OPAL_MESH_CLIENT_LABELS: "canary=true" } : {}) });
        clients.set(id, client);
        await waitReady(client);
      }),
    );
  });

  after(async () => {
    await Promise.all([...clients.values()].map((client) => client.stop()));
    await server?.stop();
    repo.remove();
  });

  test("a good version reaches the canaries, then everyone once they stayed healthy for the soak", async () => {
    await expectAll(() => 1, "v1 everywhere");
    const v2 = repo.commit({ "app/rollout.rego": policy(2) }, "v2");
    await expectAll((id) => (id.startsWith("canary") ? 2 : 1), "v2 on the canaries only, first");
    await expectAll(() => 2, "v2 promoted to everyone after the soak");
    const rollout = (await status()).rollout as Record<string, unknown>;
    assert.equal(rollout.stage, "promoted");
    assert.equal(rollout.candidate, v2);
    assert.match(String(rollout.message), /every canary \(2\) applied .* and stayed healthy for 1 s/);
  });

  test("a version one canary's OPA refuses is rolled back on the canaries and never reaches the other eight", async () => {
    const canaryA = clients.get("canary-a") as RunningClient;
    // A default for the rule, in canary-a's OPA only: a version that brings its own default cannot compile there.
    const local = await fetch(`${canaryA.opaUrl}/v1/policies/local/pin.rego`, { method: "PUT", body: "package app.rollout\n\ndefault version := 0\n" });
    assert.equal(local.status, 200, await local.text());
    const seenByEdges = new Set<unknown>();
    const watching = setInterval(() => {
      for (const id of ids.filter((candidate) => candidate.startsWith("edge"))) void versionOf(clients.get(id) as RunningClient).then((version) => seenByEdges.add(version));
    }, 20);
    try {
      repo.commit({ "app/rollout.rego": `${policy(3)}\ndefault version := 3\n` }, "v3: refused by canary-a");
      let last: unknown;
      await waitFor(
        async () => {
          last = await status();
          return ((last as { rollout: Record<string, unknown> | null }).rollout?.stage === "rolled_back" ? true : undefined);
        },
        { timeoutMs: 30_000, message: () => `rolled back: ${JSON.stringify(last)}` },
      );
      const rollout = (await status()).rollout as Record<string, unknown>;
      assert.match(String(rollout.message), /canary canary-a refused/);
      await expectAll(() => 2, "every client on v2 again");
    } finally {
      clearInterval(watching);
    }
    assert.deepEqual([...seenByEdges].filter((version) => version !== 2), [], "the eight never held v3");
  });
});

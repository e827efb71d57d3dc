/**
 * A large full bundle into an empty inline OPA: OPA recompiles everything it holds on each
 * `PUT /v1/policies`, so the client restarts its inline OPA with the modules as files
 * instead (one compile). Real git, real OPA: the modules land under their own ids, later
 * changes are PUT as usual, a module OPA refuses falls back to the PUT path (and keeps
 * nothing half-applied), and the supervisor keeps watching the reloaded process.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { GitRepo, tempDir } from "./helpers/git-repo.js";
import { capturingLogger, decide, policyIds, startClient, startServer, waitReady } from "./helpers/mesh.js";
import { waitFor } from "./helpers/wait.js";

const MODULES = 60;
const RELOADED = "inline OPA restarted with the full bundle's modules";

/** `app.m<i>` modules that import a shared package (which sorts last, so order cannot matter). */
function repoFiles(count: number, broken?: number): Record<string, string> {
  const files: Record<string, string> = { "zz/common.rego": "package app.common\n\nthreshold := 3\n" };
  for (let index = 0; index < count - 1; index++) {
    files[`team${index % 5}/m${index}.rego`] = index === broken ? `package app.m${index}\n\nallow if {\n` : `package app.m${index}\n\nimport data.app.common\n\ndefault allow := false\n\nallow if input.level > common.threshold\n\nid := ${index}\n`;
  }
  return files;
}

function serverEnv(repo: GitRepo): Record<string, string> {
  return { OPAL_POLICY_REPO_URL: repo.dir, OPAL_POLICY_REPO_MAIN_BRANCH: repo.branch, OPAL_POLICY_REPO_CLONE_PATH: tempDir("opal-mesh-clones-"), OPAL_POLICY_REPO_POLLING_INTERVAL: "0.1" };
}

test("a large full bundle goes into the empty inline OPA in one start-up; changes after it are PUT; a killed OPA is reloaded the same way", async () => {
  const repo = new GitRepo();
  repo.commit(repoFiles(MODULES), "initial");
  const server = await startServer(serverEnv(repo));
  const lines: string[] = [];
  const client = await startClient(server.url, {}, process.cwd(), capturingLogger("client", lines));
  try {
    await waitReady(client);
    assert.equal(lines.filter((line) => line.includes(RELOADED)).length, 1, "the modules were loaded by restarting OPA");
    const ids = await policyIds(client);
    assert.deepEqual(ids, Object.keys(repoFiles(MODULES)).sort(), "each module under its path in the repo");
    assert.equal(await decide(client, "app/m42/allow", { level: 4 }), true);
    assert.equal(await decide(client, "app/m42/id", {}), 42);

    const sha = repo.commit({ "zz/common.rego": "package app.common\n\nthreshold := 10\n", "team0/m0.rego": "package app.m0\n\nid := 1000\n" }, "change two");
    await waitFor(() => client.agent.policyHash === sha, { message: "the delta" });
    assert.equal(await decide(client, "app/m42/allow", { level: 4 }), false, "the shared threshold changed");
    assert.equal(await decide(client, "app/m0/id", {}), 1000);
    assert.equal(lines.filter((line) => line.includes(RELOADED)).length, 1, "a delta never restarts OPA");

    // The supervisor watches the process the reload started: killing it brings OPA back, reloaded.
    const pid = client.agent.inlineOpaPid;
    assert.ok(pid !== undefined);
    process.kill(pid, "SIGKILL");
    await waitFor(async () => client.agent.inlineOpaPid !== pid && (await policyIds(client).catch(() => [])).length === MODULES, { timeoutMs: 30_000, message: "OPA restarted and rehydrated" });
    await waitReady(client);
    assert.equal(await decide(client, "app/m0/id", {}), 1000, "the current version, not the first");
    assert.equal(lines.filter((line) => line.includes(RELOADED)).length, 2, "the rehydration used the reload too");
  } finally {
    await client.stop();
    await server.stop();
    repo.remove();
  }
});

test("a module OPA refuses at start-up: the client falls back to PUTs, reports the failure, and OPA keeps nothing of that version", async () => {
  const repo = new GitRepo();
  repo.commit(repoFiles(MODULES, 17), "one broken module");
  const server = await startServer(serverEnv(repo));
  const lines: string[] = [];
  const client = await startClient(server.url, {}, process.cwd(), capturingLogger("client", lines));
  try {
    await waitFor(() => client.agent.health.report().policy.lastTransaction?.ok === false, { timeoutMs: 30_000, message: "the failure reported" });
    assert.ok(lines.some((line) => line.includes("OPA refused to start with the policy files")), "the reload was tried and refused");
    // The announcement of that version may start one more attempt: wait until none is under way.
    await waitFor(async () => client.agent.health.report().data.pending === 0 && (await policyIds(client)).length === 0, { timeoutMs: 30_000, message: "nothing of the refused version stays in OPA" });
    assert.equal(client.agent.policyHash, "");

    const sha = repo.commit(repoFiles(MODULES), "fixed");
    await waitFor(() => client.agent.policyHash === sha, { timeoutMs: 30_000, message: "the fixed version" });
    assert.equal((await policyIds(client)).length, MODULES);
    assert.equal(await decide(client, "app/m17/id", {}), 17);
  } finally {
    await client.stop();
    await server.stop();
    repo.remove();
  }
});

/**
 * The OPAL harness itself: the real OPAL client against the real OPAL server (no opal-mesh
 * code on the path), as the compatibility tests and the bench start them. The initial
 * policy from a git repo reaches the client's own OPA; an inline update posted to OPAL's
 * server is written there; stop() leaves neither the client nor its OPA behind.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { request } from "undici";
import { GitRepo } from "./helpers/git-repo.js";
import { type OpalClient, startOpalClient } from "./helpers/opal-client.js";
import { type OpalServer, startOpalServer } from "./helpers/opal-server.js";
import { waitFor } from "./helpers/wait.js";

const POLICY = 'package app.rbac\n\nimport rego.v1\n\ndefault allow := false\n\nallow if input.user == "alice"\n';

/** Processes still serving OPA at `addr` (the client's inline OPA, found by its flag). */
function opaAt(addr: string): number[] {
  return readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry))
    .filter((entry) => {
      try {
        return readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0").includes(`--addr=${addr}`);
      } catch {
        return false;
      }
    })
    .map(Number);
}

describe("the OPAL harness: OPAL's client on OPAL's server", () => {
  let repo: GitRepo;
  let server: OpalServer | undefined;
  let client: OpalClient | undefined;

  before(async () => {
    repo = new GitRepo();
    repo.commit({ "app/rbac.rego": POLICY, "app/data.json": JSON.stringify({ roles: { alice: "admin" } }) }, "initial policy");
    // OPAL's client is ready only once it wrote some data: one inline baseline entry.
    server = await startOpalServer({ policyRepo: repo.dir, dataConfigSources: { config: { entries: [{ url: "", data: { from: "baseline" }, dst_path: "/harness/baseline", topics: ["policy_data"] }] } } });
    client = await startOpalClient({ serverUrl: server.url });
  });

  after(async () => {
    await client?.stop();
    await server?.stop();
    repo.remove();
  });

  test("the initial policy and its data.json are in the client's OPA", async () => {
    const opal = client as OpalClient;
    await waitFor(async () => (await opal.policyIds())?.includes("app/rbac.rego") === true, {
      timeoutMs: 60_000,
      message: () => `app/rbac.rego in the client's OPA\n${opal.logs().slice(-2000)}`,
    });
    assert.equal(await opal.policy("app/rbac.rego"), POLICY);
    assert.deepEqual(await opal.data("/app/roles"), { alice: "admin" });
    assert.deepEqual(await opal.data("/harness/baseline"), { from: "baseline" });
    const decision = await request(`${opal.opaUrl}/v1/data/app/rbac/allow`, { method: "POST", body: JSON.stringify({ input: { user: "alice" } }) });
    assert.deepEqual(await decision.body.json(), { result: true });
  });

  test("an inline update posted to OPAL's server reaches the client's OPA", async () => {
    const opal = client as OpalClient;
    const update = { entries: [{ url: "", data: { level: 7, by: "harness" }, dst_path: "/harness/flag", topics: ["policy_data"] }], reason: "harness test" };
    const answer = await request(`${(server as OpalServer).url}/data/config`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(update) });
    assert.equal(answer.statusCode, 200, await answer.body.text());
    const written = await waitFor(async () => (await opal.data("/harness/flag")) as { level: number } | undefined, {
      timeoutMs: 30_000,
      message: () => `the update in the client's OPA\n${opal.logs().slice(-2000)}`,
    });
    assert.deepEqual(written, { level: 7, by: "harness" });
  });

  test("stop() ends the client and its inline OPA", async () => {
    const opal = client as OpalClient;
    const addr = new URL(opal.opaUrl).host;
    assert.notDeepEqual(opaAt(addr), [], "the inline OPA runs before stop()");
    await opal.stop();
    await waitFor(() => opaAt(addr).length === 0, { timeoutMs: 10_000, message: () => `no OPA left at ${addr} (pids ${opaAt(addr).join(", ")})` });
    assert.equal(await opal.policyIds(), undefined, "nothing answers at the OPA's address");
    await opal.stop(); // idempotent
  });
});

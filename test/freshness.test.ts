/**
 * Decisions that know how fresh they are (real OPA, real git, the embedded server):
 * read-your-writes through the client's API (/wait, and OPA's data API behind
 * ?min_position=) with a client held back by a slow data source, and fail-closed
 * staleness (data.system.opal.stale) when the stream is cut longer than the limit or the
 * last update failed, with the example policy's Rule denying meanwhile.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { request } from "undici";
import { call } from "./helpers/auth.js";
import { DataSource } from "./helpers/data-source.js";
import { GitRepo } from "./helpers/git-repo.js";
import { decide, type RunningClient, type RunningServer, startClient, startServer, waitForData, waitReady } from "./helpers/mesh.js";
import { freePort } from "./helpers/ports.js";
import { waitFor } from "./helpers/wait.js";

const EXAMPLE_POLICY = readFileSync(new URL("../examples/policy/rbac/policy.rego", import.meta.url), "utf8");

async function publish(server: RunningServer, entries: unknown[]): Promise<bigint> {
  const answer = await call(`${server.url}/data/config`, { method: "POST", body: { entries } });
  assert.equal(answer.status, 200, JSON.stringify(answer.json));
  return BigInt((answer.json as { position: number }).position);
}

async function api(client: RunningClient, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown>; position: string | undefined }> {
  const response = await request(`${client.apiUrl}${path}`, body === undefined ? {} : { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const position = response.headers["x-opal-mesh-position"];
  return { status: response.statusCode, json: (await response.body.json()) as Record<string, unknown>, position: typeof position === "string" ? position : undefined };
}

describe("read-your-writes: a decision that waits for a position", () => {
  const repo = new GitRepo();
  const source = new DataSource();
  let server: RunningServer;
  let client: RunningClient;

  before(async () => {
    repo.commit({ "rbac/policy.rego": EXAMPLE_POLICY }, "example policy");
    await source.start();
    server = await startServer({
      OPAL_POLICY_REPO_URL: repo.dir,
      OPAL_POLICY_REPO_MAIN_BRANCH: "main",
      OPAL_DATA_CONFIG_SOURCES: JSON.stringify({ config: { entries: [{ url: "", data: { admin: ["read", "write"] }, dst_path: "/roles", topics: ["policy_data"] }] } }),
    });
    client = await startClient(server.url, { OPAL_MESH_MAX_CONSISTENCY_WAIT_SECONDS: "20" });
    await waitReady(client);
  });

  after(async () => {
    await client?.stop();
    await server?.stop();
    await source.stop();
    repo.remove();
  });

  test("held back by a slow source, the decision waits for the revocation, or answers 503 with where it is", async () => {
    const granted = await publish(server, [{ url: "", data: { roles: ["admin"] }, dst_path: "/users/bob", topics: ["policy_data"] }]);
    assert.equal((await api(client, `/wait?position=${granted}&timeout=10s`)).status, 200);
    const input = { input: { user: "bob", action: "write" } };
    const allowed = await api(client, `/v1/data/app/rbac/allow?min_position=${granted}`, input);
    assert.deepEqual(allowed.json, { result: true });
    assert.ok(BigInt(allowed.position ?? "0") >= granted, "the answer says where OPA is");

    // Updates apply in log order: one whose source does not answer holds back the next.
    const release = source.setGated("/slow", { note: "slow" });
    await publish(server, [{ url: source.url("/slow"), dst_path: "/slow", topics: ["policy_data"] }]);
    const revoked = await publish(server, [{ url: "", data: { roles: [] }, dst_path: "/users/bob", topics: ["policy_data"] }]);

    const early = await api(client, `/v1/data/app/rbac/allow?min_position=${revoked}&timeout=300ms`, input);
    assert.equal(early.status, 503, JSON.stringify(early.json));
    assert.equal(early.json.code, "not_at_position");
    assert.ok(BigInt(early.json.position as string) < revoked, JSON.stringify(early.json));
    assert.equal(early.json.min_position, revoked.toString());
    assert.equal((await api(client, `/wait?position=${revoked}&timeout=0.2`)).status, 503);
    // Without a position it is OPA's own answer, stale as it is.
    assert.deepEqual((await api(client, "/v1/data/app/rbac/allow", input)).json, { result: true });

    const waiting = api(client, `/v1/data/app/rbac/allow?min_position=${revoked}&timeout=15s`, input);
    release();
    const decided = await waiting;
    assert.equal(decided.status, 200, JSON.stringify(decided.json));
    assert.deepEqual(decided.json, { result: false }, "decided with the revocation in");
    assert.ok(BigInt(decided.position ?? "0") >= revoked);
    const reached = await api(client, `/wait?position=${revoked}`);
    assert.equal(reached.status, 200);
    assert.equal(reached.json.reached, true);
  });

  test("OPA's data API passes through: GET, query parameters, a document", async () => {
    const whole = await request(`${client.apiUrl}/v1/data/roles?pretty=true`);
    assert.equal(whole.statusCode, 200);
    assert.match(await whole.body.text(), /\n\s+"admin"/, "OPA's ?pretty reached OPA");
    const missing = await api(client, "/v1/data/nothing/here");
    assert.deepEqual(missing.json, {});
  });

  test("bad input is refused naming what is wrong", async () => {
    const bad = async (path: string, pattern: RegExp): Promise<void> => {
      const answer = await api(client, path);
      assert.equal(answer.status, 400, path);
      assert.match(String(answer.json.detail), pattern, path);
    };
    await bad("/wait", /position is required/);
    await bad("/wait?position=-1", /position must be a log position/);
    await bad("/v1/data/roles?min_position=abc", /min_position must be a log position/);
    await bad("/wait?position=1&timeout=soon", /timeout must be seconds/);
    await bad("/wait?position=1&timeout=99s", /OPAL_MESH_MAX_CONSISTENCY_WAIT_SECONDS=20/);
  });
});

describe("fail-closed staleness: data.system.opal.stale", () => {
  const repo = new GitRepo();
  let port: number;
  let server: RunningServer | undefined;
  let client: RunningClient;
  const baseline = JSON.stringify({
    config: {
      entries: [
        { url: "", data: { admin: ["read"] }, dst_path: "/roles", topics: ["policy_data"] },
        { url: "", data: { alice: { roles: ["admin"] } }, dst_path: "/users", topics: ["policy_data"] },
      ],
    },
  });
  const serverEnv = (): Record<string, string> => ({ OPAL_SERVER_BIND_PORT: String(port), OPAL_POLICY_REPO_URL: repo.dir, OPAL_POLICY_REPO_MAIN_BRANCH: "main", OPAL_DATA_CONFIG_SOURCES: baseline });
  const status = async (): Promise<{ stale: boolean; stale_since: string | null; stale_reasons: string[] }> => (await client.read("/system/opal")) as { stale: boolean; stale_since: string | null; stale_reasons: string[] };
  const alice = { user: "alice", action: "read" };

  before(async () => {
    repo.commit({ "rbac/policy.rego": EXAMPLE_POLICY }, "example policy");
    port = await freePort();
    server = await startServer(serverEnv());
    client = await startClient(server.url, { OPAL_MESH_MAX_STALENESS_SECONDS: "1", OPAL_MESH_MAX_LAG_POSITIONS: "1000" });
    await waitReady(client);
  });

  after(async () => {
    await client?.stop();
    await server?.stop();
    repo.remove();
  });

  test("the stream cut longer than the limit: stale in OPA, the example policy denies; back: fresh, allowed", async () => {
    assert.equal((await status()).stale, false);
    assert.equal(await decide(client, "app/rbac/allow", alice), true);
    await server?.stop();
    server = undefined;
    const stale = await waitFor(async () => ((await status()).stale ? await status() : undefined), { timeoutMs: 15_000, message: "data.system.opal.stale true after the stream was down 1 s" });
    assert.match(stale.stale_reasons.join("\n"), /the stream to the server has been down for \d+ s \(OPAL_MESH_MAX_STALENESS_SECONDS=1\)/);
    assert.ok(stale.stale_since !== null);
    assert.equal(await decide(client, "app/rbac/allow", alice), false, "denied while stale");
    assert.equal(client.agent.health.report().freshness.stale, true);
    const metrics = await (await request(`${client.apiUrl}/metrics`)).body.text();
    assert.match(metrics, /^opal_mesh_client_stale 1$/m);

    server = await startServer(serverEnv());
    let last: unknown;
    await waitFor(
      async () => {
        last = await status();
        return !(last as { stale: boolean }).stale;
      },
      { timeoutMs: 30_000, message: () => `fresh again, last ${JSON.stringify(last)}` },
    );
    assert.equal(await decide(client, "app/rbac/allow", alice), true);
  });

  test("the last update failed: stale, named on the server's view of the client; the next good one: fresh", async () => {
    const live = server as RunningServer;
    await publish(live, [{ url: "", data: [{ op: "remove", path: "/nobody" }], dst_path: "/users", save_method: "PATCH", topics: ["policy_data"] }]);
    const stale = await waitFor(async () => ((await status()).stale ? await status() : undefined), { timeoutMs: 15_000, message: "stale after a failed update" });
    assert.match(stale.stale_reasons.join("\n"), /the last update failed/);
    assert.equal(await decide(client, "app/rbac/allow", alice), false);
    await waitFor(
      async () => {
        const { clients } = await live.distributor.listClients({});
        return clients.some((entry) => entry.report?.stale === true && /the last update failed/.test(entry.report.staleReason));
      },
      { timeoutMs: 15_000, message: "the client's report says stale, and why" },
    );
    await publish(live, [{ url: "", data: { admin: ["read", "write"] }, dst_path: "/roles", topics: ["policy_data"] }]);
    await waitForData(client, "/roles", { admin: ["read", "write"] });
    await waitFor(async () => !(await status()).stale, { timeoutMs: 15_000, message: "fresh after a good update" });
    assert.equal(await decide(client, "app/rbac/allow", alice), true);
  });
});

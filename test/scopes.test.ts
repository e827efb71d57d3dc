/**
 * Scopes (tenants) end to end on the embedded server in secure mode: two tenants, each
 * with its own git repository, data sources and real OPA; OPAL's scopes API; scoped
 * updates; a scope's changed data sources reaching its connected client (OPAL #779); and
 * the scopes surviving a restart of the server (the JSON file under OPAL_BASE_DIR).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { authEnv, call, issueToken, rsaKeys } from "./helpers/auth.js";
import { GitRepo, tempDir } from "./helpers/git-repo.js";
import { decide, type RunningClient, type RunningServer, startClient, startServer, waitForData, waitReady } from "./helpers/mesh.js";
import { waitFor } from "./helpers/wait.js";

const keys = rsaKeys();
const baseDir = tempDir("opal-mesh-scopes-");
const serverEnv = { ...authEnv(keys), OPAL_SCOPES: "true", OPAL_BASE_DIR: baseDir };
const RBAC = (who: string): string => `package app.rbac\n\ndefault allow := false\n\nallow if input.user == "${who}"\n`;

let server: RunningServer;
let admin: string;
const repos = { a: new GitRepo(), b: new GitRepo() };
const clients: RunningClient[] = [];

function scope(id: "a" | "b", tenant: Record<string, unknown>, auth: Record<string, unknown> = { auth_type: "none" }) {
  return {
    scope_id: id,
    policy: { source_type: "git", url: repos[id].dir, branch: "main", auth, directories: ["."] },
    data: { config: { entries: [{ url: "", data: tenant, dst_path: "/tenant", topics: ["policy_data"] }] } },
  };
}

async function scopedClient(id: string, token: string): Promise<RunningClient> {
  const client = await startClient(server.url, { OPAL_SCOPE_ID: id, OPAL_CLIENT_TOKEN: token, OPAL_AUTH_PUBLIC_KEY: keys.publicPem });
  clients.push(client);
  return client;
}

before(async () => {
  repos.a.commit({ "rbac/policy.rego": RBAC("alice") }, "tenant a");
  repos.b.commit({ "rbac/policy.rego": RBAC("bob") }, "tenant b");
  server = await startServer(serverEnv);
  admin = await issueToken(server.url, { type: "datasource" });
});

after(async () => {
  for (const client of clients) await client.stop();
  await server?.stop();
});

let clientA: RunningClient;
let clientB: RunningClient;

test("a client that joins a scope before it exists loads it as soon as it is created", async () => {
  clientA = await scopedClient("a", await issueToken(server.url, { type: "client", claims: { allowed_scopes: ["a"] } }));
  assert.equal(clientA.agent.health.isReady(), false, "no scope a yet: nothing to be ready with");
  const put = await call(`${server.url}/scopes`, { method: "PUT", token: admin, body: scope("a", { name: "tenant a" }) });
  assert.equal(put.status, 201, JSON.stringify(put.json));
  await waitReady(clientA);
  await waitForData(clientA, "/tenant", { name: "tenant a" });
  assert.equal(await decide(clientA, "app/rbac/allow", { user: "alice" }), true);
  assert.equal(await decide(clientA, "app/rbac/allow", { user: "bob" }), false);
});

test("a second tenant gets its own policy and data, never the first one's", async () => {
  const put = await call(`${server.url}/scopes`, { method: "PUT", token: admin, body: scope("b", { name: "tenant b" }, { auth_type: "userpass", username: "git", password: "s3cret-pass" }) });
  assert.equal(put.status, 201, JSON.stringify(put.json));
  clientB = await scopedClient("b", await issueToken(server.url, { type: "client", claims: { allowed_scopes: ["b"] } }));
  await waitReady(clientB);
  await waitForData(clientB, "/tenant", { name: "tenant b" });
  assert.equal(await decide(clientB, "app/rbac/allow", { user: "bob" }), true);
  assert.equal(await decide(clientB, "app/rbac/allow", { user: "alice" }), false);
  assert.deepEqual(await clientA.read("/tenant"), { name: "tenant a" }, "tenant a is untouched");
});

test("GET /scopes lists both without their credentials; GET /scopes/{id} and an unknown id", async () => {
  const list = await call(`${server.url}/scopes`, { token: admin });
  assert.equal(list.status, 200);
  const scopes = list.json as Array<{ scope_id: string; policy: { auth: Record<string, unknown> } }>;
  assert.deepEqual(scopes.map((entry) => entry.scope_id).sort(), ["a", "b"]);
  assert.doesNotMatch(JSON.stringify(list.json), /s3cret-pass/);
  assert.deepEqual(scopes.find((entry) => entry.scope_id === "b")?.policy.auth, { auth_type: "userpass" });
  const one = await call(`${server.url}/scopes/b`, { token: admin });
  assert.equal(one.status, 200);
  assert.equal((one.json as { scope_id: string }).scope_id, "b");
  assert.equal((await call(`${server.url}/scopes/nope`, { token: admin })).status, 404);
});

test("a scoped update reaches only its scope's client", async () => {
  const toA = await call(`${server.url}/scopes/a/data/update`, { method: "POST", token: admin, body: { entries: [{ url: "", data: "for a", dst_path: "/news", topics: ["policy_data"] }] } });
  assert.equal(toA.status, 200, JSON.stringify(toA.json));
  const toB = await call(`${server.url}/scopes/b/data/update`, { method: "POST", token: admin, body: { entries: [{ url: "", data: "for b", dst_path: "/news", topics: ["policy_data"] }] } });
  assert.equal(toB.status, 200, JSON.stringify(toB.json));
  await waitForData(clientA, "/news", "for a");
  // B applies in log order: once it has its own (later) update, a's was already passed over.
  await waitForData(clientB, "/news", "for b");
  assert.equal(await clientA.read("/news"), "for a");
});

test("a commit to a tenant's repository changes only that tenant's policy", async () => {
  repos.a.commit({ "rbac/policy.rego": RBAC("carol") }, "carol now");
  const refreshed = await call(`${server.url}/scopes/a/refresh`, { method: "POST", token: admin });
  assert.equal(refreshed.status, 200, JSON.stringify(refreshed.json));
  await waitFor(async () => (await decide(clientA, "app/rbac/allow", { user: "carol" })) === true, { timeoutMs: 20_000, message: () => "tenant a's new policy" });
  assert.equal(await decide(clientA, "app/rbac/allow", { user: "alice" }), false);
  assert.equal(await decide(clientB, "app/rbac/allow", { user: "bob" }), true);
  assert.equal(await decide(clientB, "app/rbac/allow", { user: "carol" }), false);
});

test("changing a scope's data sources reaches its connected client without a reconnect (OPAL #779)", async () => {
  const sessionsOfA = async (): Promise<string[]> => {
    const { clients } = await server.distributor.listClients({}, { headers: { authorization: `Bearer ${admin}` } });
    return clients.filter((session) => session.topics.some((topic) => topic.startsWith("a:"))).map((session) => session.sessionId);
  };
  const before = await sessionsOfA();
  assert.equal(before.length, 1, "client a holds one stream");
  const put = await call(`${server.url}/scopes`, { method: "PUT", token: admin, body: scope("a", { name: "tenant a", plan: "gold" }) });
  assert.equal(put.status, 201);
  await waitForData(clientA, "/tenant", { name: "tenant a", plan: "gold" });
  assert.deepEqual(await sessionsOfA(), before, "the same stream carried the change");
  assert.deepEqual(await clientB.read("/tenant"), { name: "tenant b" });
});

test("bad scope definitions are refused with the field named, and nothing is stored", async () => {
  const cases: Array<[unknown, RegExp]> = [
    [{ scope_id: "default", policy: { source_type: "git", url: repos.a.dir } }, /scope_id/],
    [{ scope_id: "bad id!", policy: { source_type: "git", url: repos.a.dir } }, /scope_id/],
    [{ scope_id: "c", policy: { source_type: "svn", url: repos.a.dir } }, /source_type/],
    [{ scope_id: "c", policy: { source_type: "git", url: repos.a.dir, auth: { auth_type: "kerberos" } } }, /auth/],
    [{ scope_id: "c", policy: { source_type: "git", url: repos.a.dir }, data: { config: { entries: [{ url: "not a url", topics: ["t"] }] } } }, /"data","config","entries",0,"url"/],
    [{ scope_id: "c", policy: { source_type: "git", url: repos.a.dir, brnach: "main" } }, /brnach/],
  ];
  for (const [body, field] of cases) {
    const response = await call(`${server.url}/scopes`, { method: "PUT", token: admin, body });
    assert.equal(response.status, 422, `${JSON.stringify(body)} → ${JSON.stringify(response.json)}`);
    assert.match(JSON.stringify(response.json), field);
  }
  const list = await call(`${server.url}/scopes`, { token: admin });
  assert.deepEqual((list.json as Array<{ scope_id: string }>).map((entry) => entry.scope_id).sort(), ["a", "b"]);
});

test("scopes survive a restart of the server, and a deleted scope is gone", async () => {
  for (const client of clients.splice(0)) await client.stop();
  await server.stop();
  server = await startServer(serverEnv);
  admin = await issueToken(server.url, { type: "datasource" });
  const list = await call(`${server.url}/scopes`, { token: admin });
  assert.deepEqual((list.json as Array<{ scope_id: string }>).map((entry) => entry.scope_id).sort(), ["a", "b"]);
  const client = await scopedClient("b", await issueToken(server.url, { type: "client", claims: { allowed_scopes: ["b"] } }));
  await waitReady(client);
  assert.equal(await decide(client, "app/rbac/allow", { user: "bob" }), true);

  assert.equal((await call(`${server.url}/scopes/b`, { method: "DELETE", token: admin })).status, 204);
  assert.equal((await call(`${server.url}/scopes/b`, { token: admin })).status, 404);
  assert.equal((await call(`${server.url}/scopes/b/data/update`, { method: "POST", token: admin, body: { entries: [{ url: "", data: 1, dst_path: "/x", topics: ["policy_data"] }] } })).status, 404);
});

/**
 * Unmodified OPAL clients (the real `opal-client` 0.9.x from PyPI, each with its own real
 * inline OPA) against an opal-mesh server tracking a real git repository: policy and its
 * changes, inline and URL data, topic filtering, a mixed fleet (two opal-mesh and two OPAL
 * clients, 500 numbered updates), a secured server (client tokens from /token, a bad token
 * refused) and a scope.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { isDeepStrictEqual } from "node:util";
import { authEnv, call, issueToken, rsaKeys } from "./helpers/auth.js";
import { DataSource } from "./helpers/data-source.js";
import { GitRepo, tempDir } from "./helpers/git-repo.js";
import { capturingLogger, type RunningClient, type RunningServer, startClient, startServer, waitForData, waitReady } from "./helpers/mesh.js";
import { type OpalClient, startOpalClient, startOpalClients } from "./helpers/opal-client.js";
import { waitFor } from "./helpers/wait.js";

// OPAL's client runs its inline OPA in v0-compatible mode: policies valid in both.
const RBAC = (who: string): string => `package app.rbac\n\nimport rego.v1\n\ndefault allow := false\n\nallow if input.user == "${who}"\n`;

interface Delivery {
  complete: boolean;
  applied: number;
  failed: number;
  pending: number;
  unconfirmed: number;
  clients: Array<{ client_id: string; state: string; error: string }>;
}

async function publish(server: RunningServer, body: unknown, wait = false): Promise<{ id: string; delivery: Delivery | undefined }> {
  const answer = await call(`${server.url}/data/config${wait ? "?wait=true&timeout_ms=10000" : ""}`, { method: "POST", body });
  assert.equal(answer.status, 200, JSON.stringify(answer.json));
  return answer.json as { id: string; delivery: Delivery | undefined };
}

async function waitForOpalData(client: OpalClient, path: string, expected: unknown, timeoutMs = 20_000): Promise<void> {
  let last: unknown;
  await waitFor(
    async () => {
      last = await client.data(path);
      return isDeepStrictEqual(last, expected); // OPA answers with its keys sorted
    },
    { timeoutMs, message: () => `OPAL client's OPA ${path} to be ${JSON.stringify(expected)}, last ${JSON.stringify(last)}\n${client.logs().slice(-3000)}` },
  );
}

async function waitForPolicy(client: OpalClient, id: string, includes: string, timeoutMs = 30_000): Promise<void> {
  await waitFor(async () => (await client.policy(id))?.includes(includes) === true, { timeoutMs, message: () => `OPAL client's OPA to hold ${id} with ${JSON.stringify(includes)}\n${client.logs().slice(-3000)}` });
}

/** The opal-mesh session ids of the OPAL client's two websockets, once both subscribed. */
async function opalSessions(server: RunningServer, count: number): Promise<Array<{ clientId: string; topics: string[]; confirms: boolean }>> {
  return waitFor(
    async () => {
      const { clients } = await server.distributor.listClients({});
      const opal = clients.filter((client) => client.clientId.startsWith("opal:")).map((client) => ({ clientId: client.clientId, topics: client.topics, confirms: client.confirmsDeliveries }));
      return opal.length >= count ? opal : undefined;
    },
    { timeoutMs: 30_000, message: `${count} OPAL websockets subscribed` },
  );
}

describe("OPAL clients on an opal-mesh server", () => {
  const repo = new GitRepo();
  const source = new DataSource();
  let server: RunningServer;
  let reporting: OpalClient; // reports on its updates; all of policy_data
  let silent: OpalClient; // no reports; only policy_data/fleet and policy_data/shared
  const mesh: RunningClient[] = [];

  before(async () => {
    repo.commit({ "rbac/policy.rego": RBAC("alice") }, "initial");
    await source.start();
    source.set("/roles", { admin: ["alice"], viewer: ["bob"] });
    server = await startServer({
      OPAL_POLICY_REPO_URL: repo.dir,
      OPAL_POLICY_REPO_MAIN_BRANCH: "main",
      OPAL_POLICY_REPO_POLLING_INTERVAL: "1",
      // OPAL's client is ready only once it wrote some data, and it keeps an entry only when
      // one of the entry's topics is exactly one of its own: one entry for each client.
      OPAL_DATA_CONFIG_SOURCES: JSON.stringify({
        config: {
          entries: [
            { url: "", data: { from: "baseline" }, dst_path: "/baseline", topics: ["policy_data"] },
            { url: "", data: { from: "baseline" }, dst_path: "/shared/baseline", topics: ["policy_data/shared"] },
          ],
        },
      }),
    });
    [reporting, silent] = await startOpalClients([
      { serverUrl: server.url, reportUpdates: true },
      { serverUrl: server.url, reportUpdates: false, dataTopics: ["policy_data/fleet", "policy_data/shared"] },
    ]);
  });

  after(async () => {
    for (const client of mesh) await client.stop();
    await Promise.all([reporting?.stop(), silent?.stop()]);
    await server?.stop();
    await source.stop();
    repo.remove();
  });

  test("the initial policy and the baseline data reach an OPAL client; a new commit replaces the policy", async () => {
    await waitForPolicy(reporting, "rbac/policy.rego", '"alice"');
    await waitForOpalData(reporting, "/baseline", { from: "baseline" });
    repo.commit({ "rbac/policy.rego": RBAC("carol"), "rbac/extra.rego": "package app.extra\n\nimport rego.v1\n\nanswer := 42\n" }, "carol");
    await waitForPolicy(reporting, "rbac/policy.rego", '"carol"');
    await waitForPolicy(reporting, "rbac/extra.rego", "answer := 42");
    await waitForPolicy(silent, "rbac/extra.rego", "answer := 42");
    assert.equal(await reporting.data("/app/extra/answer"), 42);
  });

  test("inline and URL data updates are applied by the OPAL client, and its report makes it applied", async () => {
    const sessions = await opalSessions(server, 4);
    await waitFor(async () => (await opalSessions(server, 4)).some((session) => session.confirms), { timeoutMs: 20_000, message: "the reporting client's probe answered" });
    assert.equal(sessions.filter((session) => session.topics.includes("policy:.")).length, 2, "each OPAL client's policy updater has its own websocket");
    const inline = await publish(server, { entries: [{ url: "", data: { alice: "admin" }, dst_path: "/users", topics: ["policy_data/users"] }] }, true);
    await waitForOpalData(reporting, "/users", { alice: "admin" });
    assert.ok(inline.delivery?.complete);
    const opal = inline.delivery?.clients.filter((client) => client.client_id.startsWith("opal:")) ?? [];
    assert.deepEqual(opal.map((client) => client.state), ["DELIVERY_STATE_APPLIED"], "only the reporting client subscribes to policy_data/users (the silent one is not addressed)");
    await publish(server, { entries: [{ url: source.url("/roles"), dst_path: "/roles", topics: ["policy_data"] }] });
    await waitForOpalData(reporting, "/roles", { admin: ["alice"], viewer: ["bob"] });
  });

  test("topics: an OPAL client gets only what it subscribed to, below its topics included", async () => {
    await publish(server, { entries: [{ url: "", data: { text: "not for the silent one" }, dst_path: "/other", topics: ["policy_data/other"] }] });
    await publish(server, { entries: [{ url: "", data: { text: "for both" }, dst_path: "/shared/marker", topics: ["policy_data/shared/deeper"] }] });
    await waitForOpalData(silent, "/shared/marker", { text: "for both" });
    await waitForOpalData(reporting, "/shared/marker", { text: "for both" });
    await waitForOpalData(reporting, "/other", { text: "not for the silent one" });
    // The marker came after it on the same websocket: the silent client was never sent it.
    assert.equal(await silent.data("/other"), undefined);
  });

  test("a mixed fleet: 500 numbered updates end identical on two opal-mesh and two OPAL clients, and publish-and-wait reports each of them", async () => {
    for (const id of ["mesh-1", "mesh-2"]) mesh.push(await startClient(server.url, { OPAL_CLIENT_STAT_ID: id, OPAL_POLICY_UPDATER_ENABLED: "false" }));
    for (const client of mesh) await waitReady(client);
    const opalIds = await opalSessions(server, 4);
    const reportingId = opalIds.find((session) => session.confirms && session.topics.includes("policy_data"))?.clientId;
    const silentId = opalIds.find((session) => session.topics.includes("policy_data/fleet"))?.clientId;
    assert.ok(reportingId !== undefined && silentId !== undefined, JSON.stringify(opalIds));
    const states = (delivery: Delivery): Record<string, string> => Object.fromEntries(delivery.clients.map((client) => [client.client_id, client.state]));
    const expectedStates = { "mesh-1": "DELIVERY_STATE_APPLIED", "mesh-2": "DELIVERY_STATE_APPLIED", [reportingId]: "DELIVERY_STATE_APPLIED", [silentId]: "DELIVERY_STATE_SENT_UNCONFIRMED" };
    const expected: Record<string, { n: number }> = {};
    // In waves of 5 waits at once, each answer checked as it comes, so a miss fails at once
    // and names the client (a wait that is not complete ends at its timeout).
    for (let wave = 0; wave < 100; wave++) {
      const answers = await Promise.all(
        Array.from({ length: 5 }, (_unused, index) => {
          const n = wave * 5 + index;
          expected[`n${n}`] = { n };
          return publish(server, { entries: [{ url: "", data: { n }, dst_path: `/fleet/n${n}`, topics: ["policy_data/fleet"] }] }, true);
        }),
      );
      for (const [index, answer] of answers.entries()) {
        const delivery = answer.delivery as Delivery;
        assert.deepEqual(states(delivery), expectedStates, `update n${wave * 5 + index}: ${JSON.stringify(delivery)}\nthe reporting OPAL client:\n${reporting.logs().slice(-4000)}`);
        assert.ok(delivery.complete && delivery.applied === 3 && delivery.unconfirmed === 1 && delivery.pending === 0, `update n${wave * 5 + index}: ${JSON.stringify(delivery)}`);
      }
    }
    // One that every OPA refuses (a patch removing what is not there): failed on all but the silent one.
    const refused = await publish(server, { entries: [{ url: "", data: [{ op: "remove", path: "/nothing-here" }], dst_path: "/fleet", save_method: "PATCH", topics: ["policy_data/fleet"] }] }, true);
    assert.deepEqual(states(refused.delivery as Delivery), { "mesh-1": "DELIVERY_STATE_FAILED", "mesh-2": "DELIVERY_STATE_FAILED", [reportingId]: "DELIVERY_STATE_FAILED", [silentId]: "DELIVERY_STATE_SENT_UNCONFIRMED" });
    assert.match(refused.delivery?.clients.find((client) => client.client_id === reportingId)?.error ?? "", /could not apply \/fleet/);
    for (const client of mesh) await waitForData(client, "/fleet", expected, 30_000);
    await waitForOpalData(reporting, "/fleet", expected, 30_000);
    await waitForOpalData(silent, "/fleet", expected, 30_000);
    const documents = [...(await Promise.all(mesh.map((client) => client.read("/fleet")))), await reporting.data("/fleet"), await silent.data("/fleet")];
    for (const document of documents) assert.deepEqual(document, expected);
  });

});

describe("OPAL clients on a secured opal-mesh server with scopes", () => {
  const keys = rsaKeys();
  const repo = new GitRepo();
  const lines: string[] = [];
  let server: RunningServer;
  let admin: string;
  const clients: OpalClient[] = [];

  before(async () => {
    repo.commit({ "rbac/policy.rego": RBAC("dana") }, "tenant t1");
    server = await startServer({ ...authEnv(keys), OPAL_SCOPES: "true", OPAL_BASE_DIR: tempDir("opal-compat-scopes-"), OPAL_POLICY_REPO_URL: repo.dir, OPAL_POLICY_REPO_MAIN_BRANCH: "main" }, capturingLogger("server", lines));
    admin = await issueToken(server.url, { type: "datasource" });
    const put = await call(`${server.url}/scopes`, {
      method: "PUT",
      token: admin,
      body: { scope_id: "t1", policy: { source_type: "git", url: repo.dir, branch: "main", auth: { auth_type: "none" }, directories: ["."] }, data: { config: { entries: [{ url: "", data: { name: "tenant one" }, dst_path: "/tenant", topics: ["policy_data"] }] } } },
    });
    assert.equal(put.status, 201, JSON.stringify(put.json));
  });

  after(async () => {
    await Promise.all(clients.map((client) => client.stop()));
    await server?.stop();
    repo.remove();
  });

  test("the websocket handshake needs a client token: none, a bad one or a datasource token get 403 before it is accepted", async () => {
    const handshake = async (authorization: string | undefined): Promise<string> => {
      const port = Number(new URL(server.url).port);
      const socket = net.connect(port, "127.0.0.1");
      let text = "";
      const answered = new Promise((resolve) => {
        socket.on("data", (chunk: Buffer) => {
          text += chunk.toString("latin1");
          // A refusal closes the connection; an accepted websocket stays open: done at its head.
          if (text.startsWith("HTTP/1.1 101") && text.includes("\r\n\r\n")) resolve(undefined);
        });
        socket.once("close", resolve);
      });
      socket.write(`GET /ws HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n${authorization === undefined ? "" : `Authorization: ${authorization}\r\n`}\r\n`);
      await answered;
      socket.destroy();
      return text;
    };
    assert.match(await handshake(undefined), /^HTTP\/1\.1 403[\s\S]*a bearer token is required/);
    assert.match(await handshake("Bearer not-a-jwt"), /^HTTP\/1\.1 403[\s\S]*not a JWT/);
    assert.match(await handshake(`Bearer ${admin}`), /^HTTP\/1\.1 403[\s\S]*datasource token may not/);
    assert.match(await handshake(`Bearer ${await issueToken(server.url, { type: "client" })}`), /^HTTP\/1\.1 101/);
  });

  test("a real OPAL client with a bad token is refused and gets nothing", async () => {
    const refused = await startOpalClient({ serverUrl: server.url, token: "not-a-jwt", waitReady: false });
    clients.push(refused);
    await waitFor(() => lines.some((line) => line.includes("OPAL client refused at /ws") && line.includes("not a JWT")), { timeoutMs: 30_000, message: "the server refused the OPAL client" });
    // Its OPA answers (it runs) but holds neither policy nor data from the server.
    await waitFor(async () => (await refused.policyIds()) !== undefined, { timeoutMs: 30_000, message: "the refused client's OPA is up" });
    assert.deepEqual(await refused.policyIds(), []);
    assert.deepEqual(await refused.data(""), {});
  });

  test("a scoped OPAL client with a token from /token gets its scope's policy, data sources and updates", async () => {
    const token = await issueToken(server.url, { type: "client", claims: { allowed_scopes: ["t1"] } });
    const scoped = await startOpalClient({ serverUrl: server.url, token, scopeId: "t1", reportUpdates: true });
    clients.push(scoped);
    await waitForPolicy(scoped, "rbac/policy.rego", '"dana"');
    await waitForOpalData(scoped, "/tenant", { name: "tenant one" });
    const update = await call(`${server.url}/scopes/t1/data/update?wait=true&timeout_ms=20000`, { method: "POST", token: admin, body: { entries: [{ url: "", data: ["dana"], dst_path: "/admins", topics: ["policy_data"] }] } });
    assert.equal(update.status, 200, JSON.stringify(update.json));
    await waitForOpalData(scoped, "/admins", ["dana"]);
    // A default-scope update never reaches the tenant's client.
    await call(`${server.url}/data/config`, { method: "POST", token: admin, body: { entries: [{ url: "", data: { scope: "default" }, dst_path: "/outside", topics: ["policy_data"] }] } });
    repo.commit({ "rbac/policy.rego": RBAC("erin") }, "tenant t1 again");
    assert.equal((await call(`${server.url}/scopes/t1/refresh`, { method: "POST", token: admin })).status, 200);
    await waitForPolicy(scoped, "rbac/policy.rego", '"erin"');
    assert.equal(await scoped.data("/outside"), undefined);
  });
});

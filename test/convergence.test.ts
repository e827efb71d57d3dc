/**
 * Every client holds the fleet's state, whenever it joined (issue 13), on the embedded
 * server with clients as real processes and real OPA. Each scenario ends with every
 * client's whole managed data identical (the same JSON) to that of a client connected
 * from the start, and the checker's documents and the mixed updates' paths equal to an
 * ordered replay: the issue's report (three clients, 2,000 numbered updates through
 * POST /data/config, one killed with kill -9 together with its inline OPA at update 700
 * and started again); the inline OPA killed alone; a client started after 500 updates
 * mixing PUT, PATCH and DELETE at overlapping paths; a client starting while updates are
 * published in a tight loop; a position below the log's retention (Resync, the OPA still
 * holding the old state, paths deleted meanwhile); scoped clients joining late, after
 * their scope was redefined and its policy changed.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { request } from "undici";
import { call } from "./helpers/auth.js";
import { DeliveryChecker, type OpaReader } from "./helpers/checker.js";
import { ClientProcess, ExternalOpa } from "./helpers/client-process.js";
import { GitRepo, tempDir } from "./helpers/git-repo.js";
import { decide, type RunningClient, type RunningServer, startClient, startServer, waitForData, waitReady } from "./helpers/mesh.js";
import { MixedUpdates } from "./helpers/mixed-updates.js";
import { waitFor } from "./helpers/wait.js";

/** POSTs an update as OPAL's REST API takes it; returns its log position. */
async function post(url: string, body: unknown): Promise<bigint> {
  const response = await request(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const answer = (await response.body.json()) as { position?: number };
  assert.equal(response.statusCode, 200, `${url}: ${JSON.stringify(answer)}`);
  return BigInt(answer.position ?? 0);
}

async function publishMixed(mixed: MixedUpdates, url: string, count: number): Promise<void> {
  for (let n = 0; n < count; n++) await post(url, mixed.update());
}

/** The client connected from the start holds what an ordered replay of the mixed updates gives. */
async function assertReplay(reference: OpaReader, mixed: MixedUpdates): Promise<void> {
  assert.deepEqual(await reference.read(mixed.root), mixed.read(mixed.root), `${mixed.root} on the reference client equals an ordered replay`);
}

const named = (clients: readonly ClientProcess[]) => clients.map((client) => ({ name: client.name, reader: client.reader }));

describe("clients as processes, on one embedded server", () => {
  let checker: DeliveryChecker;
  let server: RunningServer;
  const mixed = new MixedUpdates(13);
  const clients: ClientProcess[] = [];
  let reference: ClientProcess;

  before(async () => {
    checker = await new DeliveryChecker().start();
    server = await startServer({ OPAL_DATA_CONFIG_SOURCES: JSON.stringify({ config: { entries: checker.baselineEntries() } }) });
    for (let index = 0; index < 3; index++) clients.push(await ClientProcess.inline(`client-${index}`, server.url));
    await Promise.all(clients.map((client) => client.ready()));
    reference = clients[0] as ClientProcess;
  });

  after(async () => {
    await Promise.all(clients.map((client) => client.stop()));
    await server?.stop();
    await checker?.source.stop();
  });

  test("the issue's report: 2,000 numbered updates through POST /data/config, one client killed with kill -9 with its inline OPA at update 700 and started again: all three identical", async (t) => {
    const started = Date.now();
    const killed = clients[1] as ClientProcess;
    await checker.publishRest(server.url, 700);
    await killed.killWithOpa();
    killed.restart();
    // It starts while the remaining 1,300 are published.
    await checker.publishRest(server.url, 1_300);
    await killed.ready();
    await checker.same(reference.reader, named(clients.slice(1)), 120_000);
    assert.equal(checker.count, 2_000);
    t.diagnostic(`2,000 updates, 3 clients, one killed at 700: identical ${Date.now() - started} ms after the first publish`);
  });

  test("the inline OPA killed alone mid-stream: the client writes the snapshot into the new one and ends identical", async (t) => {
    const started = Date.now();
    const victim = clients[2] as ClientProcess;
    for (let round = 0; round < 10; round++) {
      await publishMixed(mixed, `${server.url}/data/config`, 20);
      await checker.publishRest(server.url, 10);
      if (round === 4) await victim.killOpa();
    }
    await checker.same(reference.reader, named(clients.slice(1)));
    await assertReplay(reference.reader, mixed);
    t.diagnostic(`200 mixed + 100 numbered updates, OPA killed after half: identical ${Date.now() - started} ms after the first publish`);
  });

  test("a client started after 500 updates mixing PUT, PATCH and DELETE at overlapping paths ends identical to the client there from the start", async (t) => {
    await publishMixed(mixed, `${server.url}/data/config`, 500);
    await checker.publishRest(server.url, 5);
    await checker.verify(reference.reader);
    const held = mixed.paths().length;
    const started = Date.now();
    const late = await ClientProcess.inline("late", server.url);
    clients.push(late);
    await late.ready();
    await checker.same(reference.reader, [{ name: late.name, reader: late.reader }]);
    const joined = Date.now() - started;
    // And it goes on from there like the others.
    await publishMixed(mixed, `${server.url}/data/config`, 50);
    await checker.publishRest(server.url, 5);
    await checker.same(reference.reader, named(clients.slice(1)));
    await assertReplay(reference.reader, mixed);
    t.diagnostic(`after 700 mixed updates (${held} paths held under ${mixed.root}): the late client identical ${joined} ms after it was started`);
  });

  test("a client started while updates are published in a tight loop ends identical", async (t) => {
    let publishing = true;
    let during = 0;
    const loop = (async () => {
      while (publishing) {
        await post(`${server.url}/data/config`, mixed.update());
        await checker.publishRest(server.url, 1);
        during += 2;
      }
    })();
    const starting = await ClientProcess.inline("starting", server.url);
    clients.push(starting);
    try {
      await starting.ready();
    } finally {
      publishing = false;
      await loop;
    }
    await checker.publishRest(server.url, 5);
    await checker.same(reference.reader, named(clients.slice(1)));
    await assertReplay(reference.reader, mixed);
    assert.ok(during > 0, "updates were published while it started");
    t.diagnostic(`${during} updates published while the client process started`);
  });
});

describe("a position below the log's retention", () => {
  let checker: DeliveryChecker;
  let server: RunningServer;
  let opa: ExternalOpa;
  let reference: ClientProcess;
  let away: ClientProcess;
  const mixed = new MixedUpdates(20);

  before(async () => {
    checker = await new DeliveryChecker().start();
    server = await startServer({ OPAL_MESH_LOG_RETENTION_EVENTS: "20", OPAL_DATA_CONFIG_SOURCES: JSON.stringify({ config: { entries: checker.baselineEntries() } }) });
    opa = await ExternalOpa.start();
    reference = await ClientProcess.inline("reference", server.url);
    away = await ClientProcess.external("away", server.url, opa);
    await Promise.all([reference.ready(), away.ready()]);
  });

  after(async () => {
    await reference?.stop();
    await away?.stop();
    await opa?.stop();
    await server?.stop();
    await checker?.source.stop();
  });

  test("a client away while 300 updates go by (window: 20) is resynced, its OPA still holding the old state, and ends identical: deleted paths gone too", async (t) => {
    await publishMixed(mixed, `${server.url}/data/config`, 80);
    await checker.publishRest(server.url, 10);
    await checker.same(reference.reader, [{ name: away.name, reader: away.reader }]);
    const heldBefore = new Map(mixed.paths().map((path) => [path, JSON.stringify(mixed.read(path))]));
    const baselineFetches = checker.source.hits.get("/check") ?? 0;
    const resyncs = away.process.logged(/resync/i);

    await away.process.kill("SIGKILL");
    await publishMixed(mixed, `${server.url}/data/config`, 290);
    await checker.publishRest(server.url, 10);
    const heldAfter = new Set(mixed.paths());
    const gone = [...heldBefore.keys()].filter((path) => !heldAfter.has(path));
    const changed = [...heldBefore].filter(([path, value]) => heldAfter.has(path) && JSON.stringify(mixed.read(path)) !== value);
    assert.ok(gone.length > 0 && changed.length > 0, `the updates it missed deleted (${gone.length}) and changed (${changed.length}) paths its OPA holds`);
    assert.notDeepEqual(await away.reader.read(mixed.root), mixed.read(mixed.root), "its OPA holds the old state while it is away");

    const started = Date.now();
    away.restart();
    await away.ready();
    await checker.same(reference.reader, [{ name: away.name, reader: away.reader }]);
    await assertReplay(reference.reader, mixed);
    assert.ok(away.process.logged(/resync/i) > resyncs, "it was told to resync (its position is below the retained window)");
    assert.ok((checker.source.hits.get("/check") ?? 0) > baselineFetches, "it loaded its baseline again");
    t.diagnostic(`resynced over ${gone.length} deleted and ${changed.length} changed paths: identical ${Date.now() - started} ms after its restart`);
  });
});

describe("a scoped client joining late", () => {
  const repo = new GitRepo();
  const checkers: Record<"t1" | "t2", DeliveryChecker> = { t1: new DeliveryChecker(), t2: new DeliveryChecker() };
  const mixed = { t1: new MixedUpdates(1), t2: new MixedUpdates(2), unscoped: new MixedUpdates(3) };
  const clients: RunningClient[] = [];
  let server: RunningServer;
  const RBAC = (who: string): string => `package app.rbac\n\ndefault allow := false\n\nallow if input.user == "${who}"\n`;

  const definition = (id: "t1" | "t2", tenant: Record<string, unknown>) => ({
    scope_id: id,
    policy: { source_type: "git", url: repo.dir, branch: id, directories: ["."] },
    data: { config: { entries: [...checkers[id].baselineEntries(), { url: "", data: tenant, dst_path: "/tenant", topics: ["policy_data"] }] } },
  });
  const define = async (id: "t1" | "t2", tenant: Record<string, unknown>): Promise<void> => {
    const put = await call(`${server.url}/scopes`, { method: "PUT", body: definition(id, tenant) });
    assert.equal(put.status, 201, JSON.stringify(put.json));
  };
  const scoped = (id: "t1" | "t2") => `${server.url}/scopes/${id}/data/update`;
  const publishChecks = (id: "t1" | "t2", count: number) => checkers[id].publishWith((json) => post(scoped(id), json), count);
  const client = async (id: string, name: string): Promise<RunningClient> => {
    const started = await startClient(server.url, { OPAL_SCOPE_ID: id, OPAL_CLIENT_STAT_ID: name });
    clients.push(started);
    await waitReady(started);
    return started;
  };

  before(async () => {
    repo.commit({ "rbac/policy.rego": RBAC("alice") }, "t1");
    repo.git("branch", "t1");
    repo.git("checkout", "-q", "-b", "t2");
    repo.commit({ "rbac/policy.rego": RBAC("bob") }, "t2");
    await Promise.all(Object.values(checkers).map((checker) => checker.start()));
    server = await startServer({ OPAL_SCOPES: "true", OPAL_BASE_DIR: tempDir("opal-mesh-convergence-scopes-") });
    await define("t1", { name: "t1" });
    await define("t2", { name: "t2" });
  });

  after(async () => {
    for (const started of clients) await started.stop();
    await server?.stop();
    await Promise.all(Object.values(checkers).map((checker) => checker.source.stop()));
    repo.remove();
  });

  test("it gets its scope's snapshot only, in the order a connected client wrote it across a redefinition, and the policy the scope has now", async (t) => {
    const reference = { t1: await client("t1", "t1-reference"), t2: await client("t2", "t2-reference") };
    for (let round = 0; round < 4; round++) {
      await publishMixed(mixed.t1, scoped("t1"), 25);
      await publishMixed(mixed.t2, scoped("t2"), 10);
      await publishMixed(mixed.unscoped, `${server.url}/data/config`, 10);
    }
    // Writes into what the scope's data config defines, then the scope redefined: the
    // connected client reloads its baseline on top (so the checker's documents start
    // from the fixed baseline again: its updates for t1 all come after).
    await post(scoped("t1"), { entries: [{ dst_path: "/tenant/extra", data: 1 }, { dst_path: "/tenant", save_method: "PATCH", data: [{ op: "add", path: "/note", value: "before" }] }] });
    await define("t1", { name: "t1", plan: "gold" });
    await waitForData(reference.t1, "/tenant", { name: "t1", plan: "gold" });
    await post(scoped("t1"), { entries: [{ dst_path: "/tenant", save_method: "PATCH", data: [{ op: "add", path: "/note", value: "after" }] }] });
    await publishMixed(mixed.t1, scoped("t1"), 40);
    // A new policy for t1.
    repo.git("checkout", "-q", "t1");
    repo.commit({ "rbac/policy.rego": RBAC("carol") }, "carol now");
    assert.equal((await call(`${server.url}/scopes/t1/refresh`, { method: "POST" })).status, 200);
    await waitFor(async () => (await decide(reference.t1, "app/rbac/allow", { user: "carol" })) === true, { timeoutMs: 20_000, message: "t1's new policy on its connected client" });
    await publishChecks("t1", 5);
    await publishChecks("t2", 5);

    const started = Date.now();
    const late = { t1: await client("t1", "t1-late"), t2: await client("t2", "t2-late") };
    await publishChecks("t1", 3);
    await publishChecks("t2", 3);
    await checkers.t1.same(reference.t1, [{ name: "t1-late", reader: late.t1 }]);
    await checkers.t2.same(reference.t2, [{ name: "t2-late", reader: late.t2 }]);
    t.diagnostic(`late scoped clients identical ${Date.now() - started} ms after they were started`);

    await assertReplay(reference.t1, mixed.t1);
    await assertReplay(reference.t2, mixed.t2);
    assert.deepEqual(await late.t1.read("/tenant"), { name: "t1", plan: "gold", note: "after" }, "the baseline after what came before the redefinition, the later write on top");
    assert.equal(await decide(late.t1, "app/rbac/allow", { user: "carol" }), true, "the policy the scope has now");
    assert.equal(await decide(late.t1, "app/rbac/allow", { user: "alice" }), false);
    assert.equal(await decide(late.t2, "app/rbac/allow", { user: "bob" }), true);
  });
});

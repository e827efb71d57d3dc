/**
 * The distributor's dashboard in a real browser (Debian's Chromium through playwright-core)
 * against the real embedded server and two real clients: clients appear with their
 * reported health, updates appear as they are applied or fail (with the error, and a link
 * to their trace) without a reload (by polling when the change feed is blocked), a client
 * that stops disappears; on a secured server
 * the data needs a datasource token while the page itself is open.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import type { Browser, Page } from "playwright-core";
import { request } from "undici";
import { authEnv, call, issueToken, rsaKeys } from "./helpers/auth.js";
import { launchChromium } from "./helpers/browser.js";
import { DataSource } from "./helpers/data-source.js";
import { GitRepo, tempDir } from "./helpers/git-repo.js";
import { type RunningClient, type RunningServer, startClient, startServer, waitReady } from "./helpers/mesh.js";

const TRACE_UI = "http://localhost:16686/trace/{trace_id}";
const WAIT = { timeout: 20_000 };

let browser: Browser;

before(async () => {
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
});

async function publish(server: RunningServer, body: unknown, token?: string): Promise<{ id: string; position: number }> {
  const response = await request(`${server.url}/data/config`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
    body: JSON.stringify(body),
  });
  const json = (await response.body.json()) as { id: string; position: number };
  assert.equal(response.statusCode, 200, JSON.stringify(json));
  return json;
}

const clientRow = (page: Page, id: string) => page.locator(`#clients tbody tr[data-client-id="${id}"]`);
const updateRow = (page: Page, id: string) => page.locator(`#updates tr.update[data-update-id="${id}"]`);

describe("the dashboard of a running fleet", () => {
  let source: DataSource;
  let repo: GitRepo;
  let server: RunningServer;
  let eu: RunningClient;
  let us: RunningClient;
  let usStopped = false;
  let page: Page;

  before(async () => {
    source = await new DataSource().start();
    source.set("/users", { alice: { roles: ["admin"] }, bob: { roles: ["viewer"] } });
    source.set("/billing", { detail: "billing export is down" }, 500);
    // Spans go to a local OTLP/HTTP sink, so updates carry a trace id the page links to.
    source.set("/v1/traces", {});
    repo = new GitRepo();
    repo.commit({ "rbac/policy.rego": "package app.rbac\n\ndefault allow := false\n" }, "initial policy");
    server = await startServer({
      OPAL_MESH_TRACE_UI_URL: TRACE_UI,
      OPAL_POLICY_REPO_URL: repo.dir,
      OPAL_POLICY_REPO_MAIN_BRANCH: repo.branch,
      OPAL_POLICY_REPO_CLONE_PATH: tempDir("opal-mesh-clones-"),
      OPAL_POLICY_REPO_POLLING_INTERVAL: "0.1",
      OTEL_TRACES_EXPORTER: "otlp",
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: source.url("/v1/traces"),
      OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "http/json",
      OTEL_BSP_SCHEDULE_DELAY: "100",
    });
    eu = await startClient(server.url, { OPAL_CLIENT_STAT_ID: "edge-eu-1", OPAL_MESH_CLIENT_LABELS: "zone=eu,canary=true" });
    // Only this client takes the `billing` topic, so only it gets the failing entry.
    us = await startClient(server.url, { OPAL_CLIENT_STAT_ID: "edge-us-2", OPAL_DATA_TOPICS: "policy_data,billing" });
    await Promise.all([waitReady(eu), waitReady(us)]);
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    page.setDefaultTimeout(WAIT.timeout);
  });

  after(async () => {
    await page?.close();
    await eu?.stop();
    if (!usStopped) await us?.stop();
    await server?.stop();
    await source?.stop();
    repo?.remove();
  });

  test("both clients appear with their ids and their reported health", async () => {
    const errors: string[] = [];
    page.on("pageerror", (error) => errors.push(error.message));
    await page.goto(`${server.url}/dashboard`);
    for (const id of ["edge-eu-1", "edge-us-2"]) {
      await clientRow(page, id).locator(".client-id", { hasText: id }).waitFor();
      // Green once the client's report says healthy and ready.
      await clientRow(page, id).locator(".status-dot.ok").waitFor();
    }
    // Its labels, as chips (what staged rollout picks canaries by).
    assert.deepEqual(await clientRow(page, "edge-eu-1").locator(".chip.label").allTextContents(), ["canary=true", "zone=eu"]);
    assert.equal(await clientRow(page, "edge-us-2").locator(".chip.label").count(), 0);
    assert.equal(await page.locator(".badge.stale").count(), 0, "nobody is stale yet");
    await page.locator("#conn.live").waitFor();
    // Marks this document: still there at the end means nothing reloaded the page.
    await page.evaluate(() => Object.assign(globalThis, { dashboardMark: "not reloaded" }));
    assert.deepEqual(errors, []);
  });

  test("an update shows up as applied by both clients, with its trace link", async () => {
    const { id } = await publish(server, { entries: [{ url: source.url("/users"), topics: ["policy_data"], dst_path: "/users" }], reason: "users changed" });
    const row = updateRow(page, id);
    await row.locator(".badge.applied", { hasText: "2 applied" }).waitFor();
    assert.equal(await row.locator(".badge.failed").count(), 0);
    assert.match((await row.locator("a.trace").getAttribute("href")) ?? "", /^http:\/\/localhost:16686\/trace\/[0-9a-f]{32}$/);
    await publish(server, { entries: [{ data: { beta: true }, topics: ["policy_data"], dst_path: "/flags" }], reason: "feature flags" }).then(({ id: flags }) =>
      updateRow(page, flags).locator(".badge.applied", { hasText: "2 applied" }).waitFor(),
    );
  });

  test("a policy change shows up with its hash, and the clients hold it", async () => {
    const sha = repo.commit({ "rbac/policy.rego": 'package app.rbac\n\ndefault allow := false\n\nallow if input.user == "alice"\n' }, "alice may");
    await page.locator("#updates tr.update[data-kind=policy]", { hasText: sha.slice(0, 12) }).locator(".badge.applied", { hasText: "2 applied" }).waitFor();
    for (const id of ["edge-eu-1", "edge-us-2"]) await clientRow(page, id).locator("td", { hasText: sha.slice(0, 10) }).waitFor();
  });

  test("an update whose source fails on a client shows as failed, with the error", async () => {
    const { id } = await publish(server, { entries: [{ url: source.url("/billing"), topics: ["billing"], dst_path: "/billing" }], reason: "billing export" });
    const row = updateRow(page, id);
    await row.locator(".badge.failed", { hasText: "1 failed" }).waitFor();
    // The first failure is shown in the row, every client's in the expanded row.
    const inline = (await row.locator(".note.bad").textContent()) ?? "";
    assert.match(inline, /^edge-us-2: .*500/);
    assert.equal(await row.locator(".badge.applied").count(), 0, "edge-eu-1 was not addressed");
    await row.click();
    const detail = page.locator("#updates tr.detail .error-text");
    await detail.filter({ hasText: "billing export is down" }).waitFor();
    // Its last update failed: the client says its data is stale (data.system.opal.stale), and the page shows it.
    const stale = clientRow(page, "edge-us-2").locator(".badge.stale");
    await stale.waitFor();
    assert.match((await stale.getAttribute("title")) ?? "", /the last update failed/);
    assert.equal(await clientRow(page, "edge-eu-1").locator(".badge.stale").count(), 0);
    await page.locator("#s-clients-sub .bad", { hasText: "1 stale" }).waitFor();

    mkdirSync("test-results", { recursive: true });
    await page.screenshot({ path: "test-results/dashboard.png" });
    // The README's picture is refreshed on request, so a test run leaves the tree clean.
    if (process.env.OPAL_MESH_UPDATE_DOCS === "1") await page.screenshot({ path: "docs/dashboard.png" });
  });

  test("without the change feed the page polls, and still shows new updates", async () => {
    const polling = await browser.newPage();
    try {
      polling.setDefaultTimeout(WAIT.timeout);
      // As behind a proxy that refuses streaming responses.
      await polling.route("**/dashboard/api/events", (route) => route.abort());
      await polling.goto(`${server.url}/dashboard`);
      await polling.locator("#conn.polling").waitFor();
      const { id } = await publish(server, { entries: [{ data: { beta: false }, topics: ["policy_data"], dst_path: "/flags" }], reason: "beta off" });
      await updateRow(polling, id).locator(".badge.applied", { hasText: "2 applied" }).waitFor();
    } finally {
      await polling.close();
    }
  });

  test("a client that stops disappears from the clients table", async () => {
    usStopped = true;
    await us.stop();
    await clientRow(page, "edge-us-2").waitFor({ state: "detached" });
    await clientRow(page, "edge-eu-1").waitFor();
    assert.equal(await page.evaluate(() => (globalThis as { dashboardMark?: string }).dashboardMark), "not reloaded");
  });
});

describe("the dashboard of a secured server", () => {
  let server: RunningServer;

  before(async () => {
    server = await startServer(authEnv(rsaKeys()));
  });

  after(async () => {
    await server?.stop();
  });

  test("the state and the feed need a datasource token; the page itself is open", async () => {
    const datasource = await issueToken(server.url, { type: "datasource" });
    const client = await issueToken(server.url, { type: "client" });
    assert.equal((await call(`${server.url}/dashboard/api/state`)).status, 401);
    assert.equal((await call(`${server.url}/dashboard/api/state`, { token: client })).status, 403);
    const { status, json } = await call(`${server.url}/dashboard/api/state`, { token: datasource });
    assert.equal(status, 200);
    assert.deepEqual(Object.keys(json as object).sort(), ["clients", "rollout", "server", "updates"]);
    assert.equal((await call(`${server.url}/dashboard/api/events`)).status, 401);
    const page = await request(`${server.url}/dashboard`);
    assert.equal(page.statusCode, 200);
    assert.match(page.headers["content-type"] as string, /^text\/html/);
    await page.body.dump();
  });

  test("in the browser: refused without a token, live with ?token=, which leaves the address bar", async () => {
    const token = await issueToken(server.url, { type: "datasource" });
    const page = await browser.newPage();
    try {
      page.setDefaultTimeout(WAIT.timeout);
      await page.goto(`${server.url}/dashboard`);
      await page.locator("#banner", { hasText: "token" }).waitFor();
      await page.goto(`${server.url}/dashboard?token=${encodeURIComponent(token)}`);
      await page.locator("#conn.live").waitFor();
      await page.locator("#clients-empty").waitFor();
      assert.equal(await page.locator("#banner").isHidden(), true);
      assert.equal(new URL(page.url()).search, "");
    } finally {
      await page.close();
    }
  });
});

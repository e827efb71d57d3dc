/** Security cases: a publisher cannot turn the client's fetcher against its own OPA, its API or internal addresses. */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import type { Tally } from "../helpers/attacks.js";
import { authEnv, call, issueToken, rsaKeys } from "../helpers/auth.js";
import { DataSource } from "../helpers/data-source.js";
import { GitRepo, tempDir } from "../helpers/git-repo.js";
import { policyIds, type RunningClient, type RunningServer, startClient, startServer, waitForData, waitReady } from "../helpers/mesh.js";
import { waitFor } from "../helpers/wait.js";

const CLIENT_ID = "fetch-guard-client";
const INJECTED = 'package injected\n\nallow := true\n';

interface Delivery {
  delivery?: { clients?: Array<{ client_id: string; state: string; error: string }> };
}

export function fetchGuardCases(tally: Tally): void {
  describe("fetch guard: no fetch reaches the client's own OPA, its API, or a metadata address", () => {
    const keys = rsaKeys();
    const repo = new GitRepo();
    const source = new DataSource();
    let server: RunningServer;
    let client: RunningClient;
    let datasource = "";
    let opaPort = "";
    let apiPort = "";
    /** What OPA holds in data.system before any attack (the client's documents, OPA's own version). */
    let systemKeys: string[] = [];

    /** Publishes one entry and waits for the client: "refused" when it FAILED naming `rule`, else what happened. */
    async function refusedWith(entry: Record<string, unknown>, rule: RegExp, extra: Record<string, unknown> = {}): Promise<string> {
      const published = await call(`${server.url}/data/config?wait=true&timeout=20`, { method: "POST", token: datasource, body: { entries: [{ topics: ["policy_data"], dst_path: "/attack/fetched", ...entry }], ...extra } });
      if (published.status !== 200) return `published: ${published.status} ${JSON.stringify(published.json)}`;
      const mine = (published.json as Delivery).delivery?.clients?.find((delivery) => delivery.client_id === CLIENT_ID);
      if (mine === undefined) return "not delivered to the client";
      if (!mine.state.includes("FAILED")) return `${mine.state} ${mine.error}`;
      return rule.test(mine.error) ? "refused" : `FAILED, but not naming the rule: ${mine.error}`;
    }

    before(async () => {
      await source.start();
      source.set("/legit", { ok: true });
      repo.commit({ "rbac/policy.rego": "package app.rbac\n\ndefault allow := false\n" }, "main");
      // Secure mode, and no OPAL_FETCH_URL_ALLOWLIST anywhere: the default the attacks were tried against.
      server = await startServer({ ...authEnv(keys), OPAL_POLICY_REPO_URL: repo.dir, OPAL_POLICY_REPO_MAIN_BRANCH: "main", OPAL_POLICY_REPO_CLONE_PATH: tempDir("opal-mesh-fg-clones-") });
      datasource = await issueToken(server.url, { type: "datasource" });
      const clientToken = await issueToken(server.url, { type: "client" });
      client = await startClient(server.url, { OPAL_CLIENT_TOKEN: clientToken, OPAL_AUTH_PUBLIC_KEY: keys.publicPem, OPAL_CLIENT_STAT_ID: CLIENT_ID, OPAL_SHOULD_REPORT_ON_DATA_UPDATES: "true" });
      await waitReady(client);
      systemKeys = Object.keys((await client.read("/system")) as Record<string, unknown>).sort();
      opaPort = new URL(client.opaUrl).port;
      apiPort = new URL(client.apiUrl).port;
      const opa = `http://127.0.0.1:${opaPort}`;
      source.routes.set("/to-opa", { status: 302, body: "", headers: { location: `${opa}/v1/data/system` } });
      source.routes.set("/to-api", { status: 307, body: "", headers: { location: `http://localhost:${apiPort}/healthy` } });
      source.routes.set("/to-imds", { status: 302, body: "", headers: { location: "http://169.254.169.254/latest/meta-data/" } });
    });

    after(async () => {
      await client?.stop();
      await server?.stop();
      await source.stop();
    });

    test("the client's own OPA, in every spelling", async () => {
      const ownOpa = /fetch refused: .* is the client's own OPA/;
      const spellings: Array<[string, string]> = [
        ["127.0.0.1", `http://127.0.0.1:${opaPort}`],
        ["localhost", `http://localhost:${opaPort}`],
        ["localhost.", `http://localhost.:${opaPort}`],
        ["decimal 2130706433", `http://2130706433:${opaPort}`],
        ["hex 0x7f000001", `http://0x7f000001:${opaPort}`],
        ["userinfo", `http://data.example.com@127.0.0.1:${opaPort}`],
        ["[::ffff:127.0.0.1]", `http://[::ffff:127.0.0.1]:${opaPort}`],
        ["[::1]", `http://[::1]:${opaPort}`],
        ["127.9.9.9", `http://127.9.9.9:${opaPort}`],
      ];
      for (const [name, base] of spellings) {
        await tally.attempt("fetch from the client's own OPA", "refused", () => refusedWith({ url: `${base}/v1/data/system` }, ownOpa), name);
      }
      await tally.attempt("fetch from the client's own OPA", "refused", () => refusedWith({ url: `http://localhost:${opaPort}/v1/policies` }, ownOpa), "reading its policies");
    });

    test("PUT and POST through the fetcher config: policy and data/system injection", async () => {
      const writes = /fetch refused: (PUT|POST) .*OPAL_FETCH_URL_ALLOWLIST allows \(it is empty\)/;
      for (const [name, base] of [["127.0.0.1", `http://127.0.0.1:${opaPort}`], ["2130706433", `http://2130706433:${opaPort}`], ["userinfo", `http://x@127.0.0.1:${opaPort}`]] as const) {
        await tally.attempt("policy injection through the fetcher", "refused", () => refusedWith({ url: `${base}/v1/policies/injected`, config: { method: "PUT", data: INJECTED } }, writes), `PUT /v1/policies (${name})`);
        await tally.attempt("policy injection through the fetcher", "refused", () => refusedWith({ url: `${base}/v1/data/system/injected`, config: { method: "PUT", data: { owned: true } } }, writes), `PUT /v1/data/system (${name})`);
        await tally.attempt("policy injection through the fetcher", "refused", () => refusedWith({ url: `${base}/v1/data/system/injected`, config: { method: "POST", data: { owned: true } } }, writes), `POST /v1/data/system (${name})`);
      }
      await tally.attempt("non-GET fetch without an allow-list", "refused", () => refusedWith({ url: source.url("/legit"), config: { method: "POST", data: { x: 1 } } }, writes), "POST to an ordinary source");
    });

    test("the client's own API", async () => {
      const ownApi = /fetch refused: .* is the client's own API/;
      for (const base of [`http://127.0.0.1:${apiPort}`, `http://localhost:${apiPort}`, `http://[::ffff:7f00:1]:${apiPort}`]) {
        await tally.attempt("fetch from the client's own API", "refused", () => refusedWith({ url: `${base}/healthy` }, ownApi), base);
      }
      await tally.attempt("fetch from the client's own API", "refused", () => refusedWith({ url: `http://127.0.0.1:${apiPort}/data-updater/trigger`, config: { method: "POST" } }, /fetch refused: POST/), "POST /data-updater/trigger");
    });

    test("cloud metadata: refused at publish when the URL says so, and by the client when a redirect leads there", async () => {
      for (const url of ["http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/latest/meta-data/", "http://metadata.google.internal/computeMetadata/v1/", "http://[::ffff:169.254.169.254]/"]) {
        await tally.attempt("fetch of a cloud metadata address", 422, async () => (await call(`${server.url}/data/config`, { method: "POST", token: datasource, body: { entries: [{ url, topics: ["policy_data"], dst_path: "/attack/imds" }] } })).status, url);
      }
      await tally.attempt("fetch of a cloud metadata address", "refused", () => refusedWith({ url: source.url("/to-imds") }, /fetch refused: http:\/\/169\.254\.169\.254\/latest\/meta-data\/ resolves to 169\.254\.169\.254, a cloud metadata address/), "redirect from an allowed source");
    });

    test("redirects from an allowed source are checked hop by hop", async () => {
      await tally.attempt("redirect to the client's own OPA", "refused", () => refusedWith({ url: source.url("/to-opa") }, /fetch refused: http:\/\/127\.0\.0\.1:\d+\/v1\/data\/system is the client's own OPA/));
      await tally.attempt("redirect to the client's own OPA", "refused", () => refusedWith({ url: source.url("/to-api") }, /fetch refused: .* is the client's own API/), "to its API");
      assert.ok((source.hits.get("/to-opa") ?? 0) >= 1, "the source was asked, and its redirect was not followed");
    });

    test("a callback cannot send the report into the client's OPA", async () => {
      source.set("/report", { ok: true });
      await tally.attempt("update report into the client's own OPA", "not written", async () => {
        const callback = { callbacks: [[`http://localhost:${opaPort}/v1/data/system/reported`, { method: "PUT" }], `http://2130706433:${opaPort}/v1/data/system/reported2`, source.url("/report")] };
        const published = await call(`${server.url}/data/config?wait=true&timeout=20`, { method: "POST", token: datasource, body: { entries: [{ url: "", data: 1, dst_path: "/reported", topics: ["policy_data"] }], callback } });
        assert.equal(published.status, 200);
        // The report to the ordinary callback arrives once every callback was tried (refusals need no connection).
        await waitFor(() => source.requests.some((seen) => seen.path === "/report" && seen.method === "POST"), { message: () => "the ordinary callback got its report" });
        const system = (await client.read("/system")) as Record<string, unknown>;
        return system.reported === undefined && system.reported2 === undefined ? "not written" : `written: ${JSON.stringify(system)}`;
      });
    });

    test("afterwards OPA holds no injected policy or data, and the client is still ready", async () => {
      assert.ok(!(await policyIds(client)).some((id) => id.includes("injected")), "no injected module");
      const system = (await client.read("/system")) as Record<string, unknown>;
      assert.deepEqual(Object.keys(system).sort(), systemKeys, "data.system holds what it held before the attacks");
      assert.equal(await client.read("/attack"), undefined, "nothing fetched by an attack was written");
      const published = await call(`${server.url}/data/config`, { method: "POST", token: datasource, body: { entries: [{ url: source.url("/legit"), topics: ["policy_data"], dst_path: "/legit" }] } });
      assert.equal(published.status, 200);
      await waitForData(client, "/legit", { ok: true });
      await waitFor(() => client.agent.health.isReady(), { message: () => "the client is still ready" });
    });
  });
}

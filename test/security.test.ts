/**
 * The negative security suite, against the real embedded server in secure mode with two
 * tenants and real OPAs: every attack is counted (tried / rejected with the expected
 * code), nothing any attack carried reaches an OPA, a stalled stream is dropped, and the
 * server goes on serving its legitimate clients. The table printed at the end is the one
 * in issue 6's closing note. Then the positive paths: key rotation by kid.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { request } from "undici";
import { ConnectRequestSchema, type ConnectResponse, DistributorService } from "../gen/opal/mesh/v1/distributor_pb.js";
import { PolicyService } from "../gen/opal/mesh/v1/policy_pb.js";
import { TriggerService } from "../gen/opal/mesh/v1/trigger_pb.js";
import { connectOutcome, forgeToken, githubSignature, helloOutcome, streamClient, Tally, unsignedToken } from "./helpers/attacks.js";
import { authEnv, call, issueToken, MASTER_TOKEN, rsaKeys } from "./helpers/auth.js";
import { GitRepo, tempDir } from "./helpers/git-repo.js";
import { DataSource } from "./helpers/data-source.js";
import { capturingLogger, type RunningClient, type RunningServer, startClient, startServer, waitForData, waitReady } from "./helpers/mesh.js";
import { waitFor } from "./helpers/wait.js";
import { clientMemoryCases } from "./security/client-memory.cases.js";
import { deliveryStatusCases } from "./security/delivery-status.cases.js";
import { fetchGuardCases } from "./security/fetch-guard.cases.js";
import { healthTruthCases } from "./security/health-truth.cases.js";
import { httpSurfaceCases } from "./security/http-surface.cases.js";
import { reservedPathCases } from "./security/reserved-paths.cases.js";
import { streamMemoryCases } from "./security/stream-memory.cases.js";

const keys = rsaKeys();
const stranger = rsaKeys();
const WEBHOOK_SECRET = "hook-secret-5b1e";
const MAX_BODY = 64 * 1024;
const RBAC = (who: string): string => `package app.rbac\n\ndefault allow := false\n\nallow if input.user == "${who}"\n`;

const tally = new Tally();
const repos = { main: new GitRepo(), a: new GitRepo(), b: new GitRepo() };
let server: RunningServer;
let kid: string;
const tokens = { datasource: "", datasourceA: "", datasourceNarrow: "", client: "", clientA: "", clientNarrow: "", listener: "" };
let plain: RunningClient;
let tenantA: RunningClient;
/** Everything the server and tenant a's client logged, at debug level. */
const logLines: string[] = [];
const SOURCE_SECRET = "Bearer source-secret-9f3a";
const GIT_PASSWORD = "git-pass-77c2";
const source = new DataSource();

/** Connect clients that send a given token. */
function connect(token: string | undefined) {
  const transport = createConnectTransport({
    baseUrl: server.url,
    httpVersion: "1.1",
    interceptors: [(next) => (req) => (token === undefined ? next(req) : (req.header.set("authorization", `Bearer ${token}`), next(req)))],
  });
  return { trigger: createClient(TriggerService, transport), distributor: createClient(DistributorService, transport), policy: createClient(PolicyService, transport) };
}

async function status(method: "GET" | "POST" | "PUT" | "DELETE", path: string, token: string | undefined, body?: unknown): Promise<number> {
  return (await call(`${server.url}${path}`, { method, token, body })).status;
}

const attack = (path: string, extra: Record<string, unknown> = {}) => ({ entries: [{ url: "", data: "attack", dst_path: `/attack${path}`, topics: ["policy_data"], ...extra }] });

function nested(depth: number): string {
  return `${"[".repeat(depth)}${"]".repeat(depth)}`;
}

before(async () => {
  await source.start();
  source.set("/tenant-secret", { level: "classified" });
  repos.main.commit({ "rbac/policy.rego": RBAC("alice") }, "main");
  repos.a.commit({ "rbac/policy.rego": RBAC("anna") }, "tenant a");
  repos.b.commit({ "rbac/policy.rego": RBAC("bert") }, "tenant b");
  server = await startServer({
    ...authEnv(keys),
    OPAL_POLICY_REPO_URL: repos.main.dir,
    OPAL_POLICY_REPO_MAIN_BRANCH: "main",
    OPAL_POLICY_REPO_CLONE_PATH: tempDir("opal-mesh-clones-"),
    OPAL_POLICY_REPO_WEBHOOK_SECRET: WEBHOOK_SECRET,
    OPAL_SCOPES: "true",
    OPAL_BASE_DIR: tempDir("opal-mesh-scopes-"),
    OPAL_FETCH_URL_ALLOWLIST: `https://data.example.com/,${source.url("/")}`,
    OPAL_MESH_MAX_BODY_BYTES: String(MAX_BODY),
    OPAL_MESH_MAX_ENTRIES_PER_UPDATE: "50",
    OPAL_MESH_STREAM_MAX_BUFFERED_EVENTS: "20",
    OPAL_MESH_STREAM_MAX_MESSAGE_BYTES: "4096",
  }, capturingLogger("server", logLines));
  const jwks = (await call(`${server.url}/.well-known/jwks.json`)).json as { keys: Array<{ kid: string }> };
  kid = jwks.keys[0]?.kid ?? "";
  tokens.datasource = await issueToken(server.url, { type: "datasource" });
  tokens.datasourceA = await issueToken(server.url, { type: "datasource", claims: { allowed_scopes: ["a"] } });
  tokens.datasourceNarrow = await issueToken(server.url, { type: "datasource", claims: { permitted_topics: ["tenant_x"] } });
  tokens.client = await issueToken(server.url, { type: "client", claims: { permitted_topics: ["policy_data", "policy:."] } });
  tokens.clientA = await issueToken(server.url, { type: "client", claims: { allowed_scopes: ["a"] } });
  tokens.clientNarrow = await issueToken(server.url, { type: "client", claims: { permitted_topics: ["policy_data/public"] } });
  tokens.listener = await issueToken(server.url, { type: "listener" });
  for (const id of ["a", "b"] as const) {
    // Tenant a's second source needs a credential; b's repository has a password: neither may be logged.
    const secretSource = { url: source.url("/tenant-secret"), config: { headers: { Authorization: SOURCE_SECRET } }, dst_path: "/secret", topics: ["policy_data"] };
    const put = await call(`${server.url}/scopes`, {
      method: "PUT",
      token: tokens.datasource,
      body: {
        scope_id: id,
        policy: { source_type: "git", url: repos[id].dir, auth: id === "b" ? { auth_type: "userpass", username: "git", password: GIT_PASSWORD } : { auth_type: "none" } },
        data: { config: { entries: [{ url: "", data: { tenant: id }, dst_path: "/tenant", topics: ["policy_data"] }, ...(id === "a" ? [secretSource] : [])] } },
      },
    });
    assert.equal(put.status, 201, JSON.stringify(put.json));
  }
  plain = await startClient(server.url, { OPAL_CLIENT_TOKEN: tokens.client, OPAL_AUTH_PUBLIC_KEY: keys.publicPem });
  tenantA = await startClient(server.url, { OPAL_CLIENT_TOKEN: tokens.clientA, OPAL_SCOPE_ID: "a", OPAL_AUTH_PUBLIC_KEY: keys.publicPem }, process.cwd(), capturingLogger("tenant-a", logLines));
  await Promise.all([waitReady(plain), waitReady(tenantA)]);
  await waitForData(tenantA, "/tenant", { tenant: "a" });
});

after(async () => {
  await plain?.stop();
  await tenantA?.stop();
  await server?.stop();
  await source.stop();
  process.stdout.write(`\nattack → tried → rejected\n${tally.table()}\n`);
});

describe("forged and invalid tokens", () => {
  test("signed by a stranger's key (with our kid, and without one)", async () => {
    for (const forged of [await forgeToken({ privatePem: stranger.privatePem, kid, claims: { peer_type: "datasource" } }), await forgeToken({ privatePem: stranger.privatePem, claims: { peer_type: "datasource" } })]) {
      await tally.attempt("forged signature", 401, () => status("POST", "/data/config", forged, attack("/forged")), "REST publish");
      await tally.attempt("forged signature", "Unauthenticated", () => connectOutcome(() => connect(forged).trigger.publishDataUpdate({ entries: [{ dstPath: "/attack/forged", topics: ["policy_data"], data: { kind: { case: "stringValue", value: "x" } } }] })), "Connect publish");
      await tally.attempt("forged signature", 401, () => status("PUT", "/scopes", forged, { scope_id: "evil", policy: { source_type: "git", url: repos.b.dir } }), "PUT /scopes");
    }
    const forgedClient = await forgeToken({ privatePem: stranger.privatePem, kid, claims: { peer_type: "client", allowed_scopes: ["b"] } });
    const stream = streamClient(`127.0.0.1:${server.server.streamPort}`);
    try {
      await tally.attempt("forged signature", "UNAUTHENTICATED", () => helloOutcome(stream.open(forgedClient), { scope: "b" }), "client stream");
    } finally {
      stream.close();
    }
    await tally.attempt("forged signature", 401, () => status("GET", "/scopes/b/policy", forgedClient), "scoped bundle");
  });

  test("a genuine token with its claims edited (signature kept)", async () => {
    const [header, payload, signature] = tokens.client.split(".") as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString()) as Record<string, unknown>;
    const edited = `${header}.${Buffer.from(JSON.stringify({ ...claims, peer_type: "datasource" })).toString("base64url")}.${signature}`;
    await tally.attempt("tampered claims", 401, () => status("POST", "/data/config", edited, attack("/tampered")));
    await tally.attempt("tampered claims", "Unauthenticated", () => connectOutcome(() => connect(edited).distributor.listClients({})));
  });

  test("expired, wrong audience, wrong issuer", async () => {
    const expired = await forgeToken({ privatePem: keys.privatePem, kid, claims: { peer_type: "datasource" }, expiresIn: -60 });
    const audience = await forgeToken({ privatePem: keys.privatePem, kid, claims: { peer_type: "datasource" }, audience: "https://someone-else/" });
    const issuer = await forgeToken({ privatePem: keys.privatePem, kid, claims: { peer_type: "datasource" }, issuer: "https://evil.example/" });
    for (const [name, token] of [["expired token", expired], ["wrong audience", audience], ["wrong issuer", issuer]] as const) {
      await tally.attempt(name, 401, () => status("POST", "/data/config", token, attack("/claims")), "REST publish");
      await tally.attempt(name, "Unauthenticated", () => connectOutcome(() => connect(token).policy.getBundle({})), "GetBundle");
      const stream = streamClient(`127.0.0.1:${server.server.streamPort}`);
      try {
        const asClient = await forgeToken({ privatePem: keys.privatePem, kid, claims: { peer_type: "client" }, ...(name === "expired token" ? { expiresIn: -60 } : name === "wrong audience" ? { audience: "https://someone-else/" } : { issuer: "https://evil.example/" }) });
        await tally.attempt(name, "UNAUTHENTICATED", () => helloOutcome(stream.open(asClient), {}), "client stream");
      } finally {
        stream.close();
      }
    }
  });

  test("alg none, no token, and not a JWT", async () => {
    const none = unsignedToken({ peer_type: "datasource" });
    await tally.attempt("alg none", 401, () => status("POST", "/data/config", none, attack("/none")), "REST publish");
    await tally.attempt("alg none", "Unauthenticated", () => connectOutcome(() => connect(none).trigger.publishDataUpdate({ entries: [{ dstPath: "/attack/none", topics: ["policy_data"], data: { kind: { case: "stringValue", value: "x" } } }] })));
    const stream = streamClient(`127.0.0.1:${server.server.streamPort}`);
    try {
      await tally.attempt("alg none", "UNAUTHENTICATED", () => helloOutcome(stream.open(unsignedToken({ peer_type: "client", allowed_scopes: ["b"] })), { scope: "b" }), "client stream");
      await tally.attempt("no token", "UNAUTHENTICATED", () => helloOutcome(stream.open(undefined), {}), "client stream");
    } finally {
      stream.close();
    }
    await tally.attempt("no token", 401, () => status("POST", "/data/config", undefined, attack("/anonymous")));
    await tally.attempt("no token", 401, () => status("GET", "/data/config", undefined));
    await tally.attempt("no token", 401, () => status("GET", "/scopes", undefined));
    await tally.attempt("no token", "Unauthenticated", () => connectOutcome(() => connect(undefined).distributor.getDataSourcesConfig({})));
    await tally.attempt("no token", 401, () => status("POST", "/data/config", "not-a-jwt", attack("/garbage")), "garbage bearer");
    await tally.attempt("no token", 401, () => status("POST", "/token", tokens.datasource, { type: "datasource" }), "POST /token without the master token");
    await tally.attempt("no token", 401, () => status("POST", "/token", `${MASTER_TOKEN}x`, { type: "datasource" }), "POST /token with a wrong master token");
  });
});

describe("peer types, topics and scopes", () => {
  test("a token of the wrong peer type", async () => {
    await tally.attempt("wrong peer type", 403, () => status("POST", "/data/config", tokens.client, attack("/as-client")), "client publishes");
    await tally.attempt("wrong peer type", "PermissionDenied", () => connectOutcome(() => connect(tokens.client).trigger.publishDataUpdate({ entries: [{ dstPath: "/attack/as-client", topics: ["policy_data"], data: { kind: { case: "stringValue", value: "x" } } }] })));
    await tally.attempt("wrong peer type", 403, () => status("PUT", "/scopes", tokens.listener, { scope_id: "evil", policy: { source_type: "git", url: repos.b.dir } }), "listener defines a scope");
    await tally.attempt("wrong peer type", 403, () => status("GET", "/scopes", tokens.client), "client lists scopes");
    await tally.attempt("wrong peer type", "PermissionDenied", () => connectOutcome(() => connect(tokens.client).distributor.listClients({})), "client lists clients");
    await tally.attempt("wrong peer type", "PermissionDenied", () => connectOutcome(() => connect(tokens.datasource).policy.getBundle({})), "datasource reads bundles");
    const stream = streamClient(`127.0.0.1:${server.server.streamPort}`);
    try {
      await tally.attempt("wrong peer type", "PERMISSION_DENIED", () => helloOutcome(stream.open(tokens.datasource), {}), "datasource opens a client stream");
    } finally {
      stream.close();
    }
    // The client's own API (unauthenticated in OPAL) wants a listener token.
    const trigger = (token: string | undefined) => call(`${plain.apiUrl}/data-updater/trigger`, { method: "POST", token }).then((response) => response.status);
    await tally.attempt("client API without a listener token", 401, () => trigger(undefined));
    await tally.attempt("client API without a listener token", 403, () => trigger(tokens.client));
    await tally.attempt("client API without a listener token", 401, async () => trigger(await forgeToken({ privatePem: stranger.privatePem, kid, claims: { peer_type: "listener" } })));
    assert.equal(await trigger(tokens.listener), 200, "a listener token is accepted");
  });

  test("topic escalation beyond permitted_topics", async () => {
    const stream = streamClient(`127.0.0.1:${server.server.streamPort}`);
    try {
      await tally.attempt("topic escalation", "PERMISSION_DENIED", () => helloOutcome(stream.open(tokens.clientNarrow), { topics: ["policy_data"] }), "subscribe to the parent");
      await tally.attempt("topic escalation", "PERMISSION_DENIED", () => helloOutcome(stream.open(tokens.clientNarrow), { topics: ["policy_data/public", "policy_data/secret"] }), "one topic too many");
      await tally.attempt("topic escalation", "INVALID_ARGUMENT", () => helloOutcome(stream.open(tokens.client), { topics: ["b:data:policy_data"] }), "a plain client names a scope's topic");
    } finally {
      stream.close();
    }
    await tally.attempt("topic escalation", 403, () => status("POST", "/data/config", tokens.datasourceNarrow, attack("/narrow")), "datasource outside its topics");
    await tally.attempt("topic escalation", "PermissionDenied", () =>
      connectOutcome(() => connect(tokens.datasourceNarrow).trigger.publishDataUpdate({ entries: [{ dstPath: "/attack/narrow", topics: ["policy_data"], data: { kind: { case: "stringValue", value: "x" } } }] })),
    );
  });

  test("cross-scope reads, subscriptions and writes", async () => {
    const stream = streamClient(`127.0.0.1:${server.server.streamPort}`);
    try {
      await tally.attempt("cross-scope subscribe", "PERMISSION_DENIED", () => helloOutcome(stream.open(tokens.clientA), { scope: "b" }), "tenant a joins b");
      await tally.attempt("cross-scope subscribe", "PERMISSION_DENIED", () => helloOutcome(stream.open(tokens.clientA), { scope: "default" }), "tenant a joins the default scope");
      await tally.attempt("cross-scope subscribe", "PERMISSION_DENIED", () => helloOutcome(stream.open(tokens.client), { scope: "a" }), "an unscoped client joins a");
    } finally {
      stream.close();
    }
    await tally.attempt("cross-scope read", 403, () => status("GET", "/scopes/b/policy", tokens.clientA));
    await tally.attempt("cross-scope read", 403, () => status("GET", "/scopes/b/data", tokens.clientA));
    await tally.attempt("cross-scope read", 403, () => status("GET", "/data/config", tokens.clientA), "tenant reads the default sources");
    await tally.attempt("cross-scope read", "PermissionDenied", () => connectOutcome(() => connect(tokens.clientA).policy.getBundle({ scope: "b" })));
    await tally.attempt("cross-scope read", "PermissionDenied", () => connectOutcome(() => connect(tokens.clientA).distributor.getDataSourcesConfig({ scope: "b" })));
    await tally.attempt("cross-scope read", "PermissionDenied", () => connectOutcome(() => connect(tokens.client).policy.getBundle({ scope: "a" })), "unscoped client reads a");
    await tally.attempt("cross-scope read", 403, () => status("GET", "/scopes/b", tokens.datasourceA), "admin of a reads b");
    await tally.attempt("cross-scope write", 403, () => status("PUT", "/scopes", tokens.datasourceA, { scope_id: "b", policy: { source_type: "git", url: repos.a.dir } }), "admin of a redefines b");
    await tally.attempt("cross-scope write", 403, () => status("DELETE", "/scopes/b", tokens.datasourceA));
    await tally.attempt("cross-scope write", 403, () => status("POST", "/scopes/b/data/update", tokens.datasourceA, attack("/cross")));
    await tally.attempt("cross-scope write", 403, () => status("POST", "/data/config", tokens.datasourceA, attack("/cross", { topics: ["b:data:policy_data"] })), "scoped topic on the plain route");
    await tally.attempt("cross-scope write", 422, () => status("POST", "/data/config", tokens.datasource, { entries: [...attack("/mixed").entries, { url: "", data: 1, dst_path: "/attack/mixed2", topics: ["b:data:policy_data"] }] }), "one update, two scopes");
    const list = (await call(`${server.url}/scopes`, { token: tokens.datasourceA })).json as Array<{ scope_id: string }>;
    assert.deepEqual(list.map((scope) => scope.scope_id), ["a"], "an admin of a lists only a");
  });
});

describe("hostile input", () => {
  test("a replayed or forged webhook", async () => {
    const body = JSON.stringify({ ref: "refs/heads/main", repository: { clone_url: repos.main.dir, full_name: "org/policy" } });
    const hook = (payload: string, signature: string | undefined) =>
      request(`${server.url}/webhook`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-github-event": "push", ...(signature === undefined ? {} : { "x-hub-signature-256": signature }) },
        body: payload,
      }).then(async (response) => (await response.body.dump(), response.statusCode));
    assert.equal(await hook(body, githubSignature(WEBHOOK_SECRET, body)), 200, "the genuine webhook is accepted");
    const altered = body.replace("refs/heads/main", "refs/heads/evil");
    await tally.attempt("webhook with a bad signature", 401, () => hook(altered, githubSignature(WEBHOOK_SECRET, body)), "replayed signature, altered body");
    await tally.attempt("webhook with a bad signature", 401, () => hook(body, githubSignature("guessed", body)), "wrong secret");
    await tally.attempt("webhook with a bad signature", 401, () => hook(body, undefined), "no signature");
    await tally.attempt("webhook with a bad signature", 401, () => hook(body, "sha256=zz"), "malformed signature");
  });

  test("oversized bodies and messages", async () => {
    const big = attack("/big");
    (big.entries[0] as Record<string, unknown>).data = "x".repeat(MAX_BODY + 1);
    await tally.attempt("oversized body", 413, () => status("POST", "/data/config", tokens.datasource, big), "REST publish");
    await tally.attempt("oversized body", 413, () => status("PUT", "/scopes", tokens.datasource, { scope_id: "big", policy: { source_type: "git", url: "x".repeat(MAX_BODY + 1) } }), "PUT /scopes");
    await tally.attempt("oversized body", "ResourceExhausted", () =>
      connectOutcome(() => connect(tokens.datasource).trigger.publishDataUpdate({ entries: [{ dstPath: "/attack/big", topics: ["policy_data"], data: { kind: { case: "stringValue", value: "x".repeat(MAX_BODY + 1) } } }] })),
    );
    const stream = streamClient(`127.0.0.1:${server.server.streamPort}`);
    try {
      await tally.attempt("oversized body", "RESOURCE_EXHAUSTED", () => helloOutcome(stream.open(tokens.client), { topics: ["policy_data", "x".repeat(8192)] }), "stream message over 4 KiB");
    } finally {
      stream.close();
    }
    await tally.attempt("too many entries", 422, () => status("POST", "/data/config", tokens.datasource, { entries: Array.from({ length: 51 }, (_, index) => attack(`/many${index}`).entries[0]) }));
  });

  test("deeply nested JSON", async () => {
    await tally.attempt("deeply nested body", 422, () => status("POST", "/data/config", tokens.datasource, `{"entries":[{"url":"","dst_path":"/attack/deep","topics":["policy_data"],"data":${nested(5_000)}}]}`), "REST publish");
    await tally.attempt("deeply nested body", 422, () => status("PUT", "/scopes", tokens.datasource, `{"scope_id":"deep","policy":{"source_type":"git","url":"x"},"extra":${nested(5_000)}}`), "PUT /scopes");
    const response = await request(`${server.url}/opal.mesh.v1.TriggerService/PublishDataUpdate`, {
      method: "POST",
      headers: { authorization: `Bearer ${tokens.datasource}`, "content-type": "application/json" },
      body: `{"entries":[{"dstPath":"/attack/deep","topics":["policy_data"],"data":${nested(5_000)}}]}`,
    });
    const answer = (await response.body.json()) as { code?: string };
    await tally.attempt("deeply nested body", "invalid_argument", () => Promise.resolve(answer.code ?? String(response.statusCode)), "Connect JSON publish");
  });

  test("fetch guard: sources outside OPAL_FETCH_URL_ALLOWLIST", async () => {
    await tally.attempt("fetch of an internal address", 422, () => status("POST", "/data/config", tokens.datasource, { entries: [{ url: "http://169.254.169.254/latest/meta-data/", dst_path: "/attack/imds", topics: ["policy_data"] }] }));
    await tally.attempt("fetch of an internal address", 422, () => status("POST", "/data/config", tokens.datasource, { entries: [{ url: "https://data.example.com.evil.net/x", dst_path: "/attack/lookalike", topics: ["policy_data"] }] }), "look-alike host");
    await tally.attempt("fetch of an internal address", 422, () =>
      status("PUT", "/scopes", tokens.datasource, { scope_id: "c", policy: { source_type: "git", url: repos.a.dir }, data: { config: { entries: [{ url: "http://127.0.0.1:22/", topics: ["policy_data"], dst_path: "/attack/ssh" }] } } }),
    );
  });

  test("a client that stops reading its stream is dropped; the others are still served", async () => {
    const stream = streamClient(`127.0.0.1:${server.server.streamPort}`);
    try {
      const stalled = stream.open(tokens.client);
      const welcomed = new Promise<void>((resolve) => stalled.once("data", (response: ConnectResponse) => response.message.case === "welcome" && resolve()));
      const ended = new Promise<string>((resolve) => stalled.on("error", (error: { code: number }) => resolve(String(error.code))));
      stalled.write(create(ConnectRequestSchema, { message: { case: "hello", value: { clientId: "stalled", topics: ["policy_data"], scope: "default" } } }));
      await welcomed;
      stalled.pause();
      const sessions = async (): Promise<string[]> => (await connect(tokens.datasource).distributor.listClients({})).clients.map((session) => session.clientId);
      assert.ok((await sessions()).includes("stalled"));
      const heapBefore = process.memoryUsage().heapUsed;
      await tally.attempt("stalled client stream", "dropped", async () => {
        // 32 KiB updates until the stalled stream has more than 20 waiting (a few MB at most).
        for (let index = 0; index < 400 && (await sessions()).includes("stalled"); index++) {
          const published = await call(`${server.url}/data/config`, { method: "POST", token: tokens.datasource, body: { entries: [{ url: "", data: "y".repeat(32 * 1024), dst_path: "/load", topics: ["policy_data"] }] } });
          assert.equal(published.status, 200);
        }
        return (await sessions()).includes("stalled") ? "still connected" : "dropped";
      });
      // Dropped well before 400 × 32 KiB were held for it.
      assert.ok(process.memoryUsage().heapUsed - heapBefore < 64 * 1024 * 1024, "memory stayed bounded");
      stalled.resume();
      assert.equal(await ended, "8", "the stream ended with RESOURCE_EXHAUSTED");
      const last = await call(`${server.url}/data/config`, { method: "POST", token: tokens.datasource, body: { entries: [{ url: "", data: "still served", dst_path: "/served", topics: ["policy_data"] }] } });
      assert.equal(last.status, 200);
      await waitForData(plain, "/served", "still served");
    } finally {
      stream.close();
    }
  });
});

describe("afterwards", () => {
  test("no attack reached any OPA, and the tenants are intact", async () => {
    for (const client of [plain, tenantA]) assert.equal(await client.read("/attack"), undefined);
    assert.deepEqual(await tenantA.read("/tenant"), { tenant: "a" });
    assert.equal(await plain.read("/tenant"), undefined, "the unscoped client never saw a tenant's data");
    const scopes = (await call(`${server.url}/scopes`, { token: tokens.datasource })).json as Array<{ scope_id: string }>;
    assert.deepEqual(scopes.map((scope) => scope.scope_id).sort(), ["a", "b"], "no scope was created, changed or deleted by an attack");
    await waitFor(() => plain.agent.health.isReady() && tenantA.agent.health.isReady(), { message: () => "both clients still ready" });
  });

  test("no secret appears in what the server and a tenant's client logged", async () => {
    await waitForData(tenantA, "/secret", { level: "classified" });
    assert.equal(source.requests.find((seen) => seen.path === "/tenant-secret")?.headers.authorization, SOURCE_SECRET, "the credential was used");
    const logged = logLines.join("");
    assert.ok(logLines.length > 50 && logged.includes("scope stored"), `the logs were captured (${logLines.length} lines)`);
    const secrets: Record<string, string> = {
      "master token": MASTER_TOKEN,
      "datasource token": tokens.datasource,
      "tenant client token": tokens.clientA,
      "listener token": tokens.listener,
      "private key": keys.privatePem.split("\n")[5] ?? "",
      "data source credential": SOURCE_SECRET.slice("Bearer ".length),
      "git password": GIT_PASSWORD,
    };
    for (const [name, secret] of Object.entries(secrets)) assert.ok(secret.length > 8 && !logged.includes(secret), `the ${name} was logged`);
  });
});

describe("key rotation by kid", () => {
  test("during a rollover tokens of both keys are accepted; afterwards only the new key's", async () => {
    const oldKeys = rsaKeys();
    const newKeys = rsaKeys();
    const before = await startServer({ ...authEnv(oldKeys), OPAL_SCOPES: "false" });
    const oldToken = await issueToken(before.url, { type: "datasource" });
    await before.stop();

    const rolling = await startServer({ ...authEnv(newKeys), OPAL_MESH_AUTH_PREVIOUS_PUBLIC_KEYS: JSON.stringify([oldKeys.publicPem]) });
    try {
      const jwks = (await call(`${rolling.url}/.well-known/jwks.json`)).json as { keys: Array<{ kid: string }> };
      assert.equal(jwks.keys.length, 2, "both keys published");
      const newToken = await issueToken(rolling.url, { type: "datasource" });
      const kids = [oldToken, newToken].map((token) => (JSON.parse(Buffer.from(token.split(".")[0] as string, "base64url").toString()) as { kid: string }).kid);
      assert.notEqual(kids[0], kids[1]);
      assert.equal(kids[1], jwks.keys[0]?.kid, "new tokens carry the current key's kid");
      for (const token of [oldToken, newToken]) assert.equal((await call(`${rolling.url}/updates/unknown`, { token })).status, 404, "accepted (and the update is unknown)");
    } finally {
      await rolling.stop();
    }

    const after = await startServer(authEnv(newKeys));
    try {
      assert.equal((await call(`${after.url}/updates/unknown`, { token: oldToken })).status, 401, "the old key is retired");
      assert.equal((await call(`${after.url}/updates/unknown`, { token: await issueToken(after.url, { type: "datasource" }) })).status, 404);
    } finally {
      await after.stop();
    }
  });
});

// Cases with servers and clients of their own (another configuration than the one above:
// no fetch allow-list, as the attacks of the hardening issue were tried), one module each.
fetchGuardCases(tally);
reservedPathCases(tally);
httpSurfaceCases(tally);
streamMemoryCases(tally);
clientMemoryCases(tally);
deliveryStatusCases(tally);
healthTruthCases(tally);

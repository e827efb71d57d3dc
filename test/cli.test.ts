/**
 * The `opal-mesh` verbs as a user runs them: the real CLI in a subprocess against the
 * real embedded server and real clients (each with its inline OPA), a real local HTTP
 * server as data source. Exit codes, what reaches OPA, and what is printed.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { authEnv, call, issueToken, MASTER_TOKEN, rsaKeys } from "./helpers/auth.js";
import { DataSource } from "./helpers/data-source.js";
import { type RunningClient, type RunningServer, startClient, startServer, waitForData, waitReady } from "./helpers/mesh.js";
import { waitFor } from "./helpers/wait.js";

const BIN = fileURLToPath(new URL("../bin/opal-mesh.js", import.meta.url));

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `opal-mesh <args>` with a clean environment (plus `env`): nothing of the developer's OPAL_* leaks in. */
async function cli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const base = Object.fromEntries(["PATH", "HOME", "TMPDIR"].flatMap((name) => (process.env[name] === undefined ? [] : [[name, process.env[name]]])));
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...base, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const killer = setTimeout(() => child.kill("SIGKILL"), 90_000);
  const code = await new Promise<number | null>((resolve) => child.once("close", resolve));
  clearTimeout(killer);
  return { code, stdout, stderr };
}

function publishedId(result: CliResult): string {
  const match = /published update (\S+)/.exec(result.stdout);
  assert.ok(match?.[1] !== undefined, `no update id in: ${result.stdout}${result.stderr}`);
  return match[1];
}

function show(result: CliResult): string {
  return `exit ${result.code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`;
}

describe("publish-data-update and status against a dev-mode server", () => {
  let source: DataSource;
  let server: RunningServer;
  let client: RunningClient;

  before(async () => {
    source = await new DataSource().start();
    server = await startServer();
    client = await startClient(server.url, { OPAL_CLIENT_STAT_ID: "cli-client-0" });
    await waitReady(client);
  });

  after(async () => {
    await client?.stop();
    await server?.stop();
    await source?.stop();
  });

  test("OPAL's single-entry flags: the source's data reaches the client's OPA", async () => {
    source.set("/users", { alice: { roles: ["admin"] } });
    const result = await cli(["publish-data-update", "--server-url", server.url, "--src-url", source.url("/users"), "-t", "policy_data", "--dst-path", "/cli/users", "--reason", "users changed"]);
    assert.equal(result.code, 0, show(result));
    publishedId(result);
    await waitForData(client, "/cli/users", { alice: { roles: ["admin"] } });
  });

  test("--entries publishes a list of whole entries", async () => {
    const entries = [
      { data: { plan: "pro" }, dst_path: "/cli/entries/billing", topics: ["policy_data"] },
      { data: ["read"], dst_path: "/cli/entries/scopes" },
    ];
    const result = await cli(["publish-data-update", "-s", server.url, "--entries", JSON.stringify(entries)]);
    assert.equal(result.code, 0, show(result));
    assert.match(result.stdout, /2 entries/);
    await waitForData(client, "/cli/entries", { billing: { plan: "pro" }, scopes: ["read"] });
  });

  test("--wait exits 0 once every client applied it, and says so", async () => {
    const result = await cli(["publish-data-update", "-s", server.url, "--data", '{"active": false}', "--dst-path", "/cli/waited", "--wait", "--timeout", "20"]);
    assert.equal(result.code, 0, show(result));
    assert.match(result.stdout, /1\/1 applied, 0 failed, 0 pending/);
    assert.match(result.stderr, /delivery: 1\/1 applied/, "progress as plain lines when stderr is not a TTY");
    assert.deepEqual(await client.read("/cli/waited"), { active: false }, "applied means committed in OPA");
  });

  test("--wait exits 1 when a client fails the update, naming the client and its error; status shows it too", async () => {
    source.set("/broken", { detail: "database on fire" }, 500);
    const result = await cli(["publish-data-update", "-s", server.url, "--src-url", source.url("/broken"), "--dst-path", "/cli/broken", "--wait", "--timeout", "20"]);
    assert.equal(result.code, 1, show(result));
    assert.match(result.stdout, /0\/1 applied, 1 failed/);
    const failing = result.stdout.split("\n").find((line) => line.startsWith("cli-client-0"));
    assert.ok(failing !== undefined && /FAILED/.test(failing) && /500/.test(failing), `the failing client and its error: ${result.stdout}`);
    assert.equal(await client.read("/cli/broken"), undefined, "nothing was written");

    const status = await cli(["status", publishedId(result), "-s", server.url]);
    assert.equal(status.code, 1, show(status));
    assert.match(status.stdout, /CLIENT\s+STATE\s+LATENCY\s+ERROR/);
    assert.match(status.stdout, /cli-client-0\s+FAILED\s+\d+ ms\s+.*500/);
  });

  test("a refused update exits 3 with the server's field errors, and nothing is published", async () => {
    const before = (await call(`${server.url}/healthcheck`)).json as { head_position: number };
    const result = await cli(["publish-data-update", "-s", server.url, "--data", "1", "--dst-path", "/cli/../escape"]);
    assert.equal(result.code, 3, show(result));
    assert.match(result.stderr, /HTTP 422/);
    assert.match(result.stderr, /entries\.0\.dst_path: must not contain "\." or "\.\." segments/);
    const afterRefusal = (await call(`${server.url}/healthcheck`)).json as { head_position: number };
    assert.equal(afterRefusal.head_position, before.head_position);
  });

  test("bad flags exit 64, naming the flag, before any request", async () => {
    const target = source.url("");
    const requestsBefore = source.requests.length;
    const badJson = await cli(["publish-data-update", "-s", target, "--data", "{not json", "--dst-path", "/x"]);
    assert.equal(badJson.code, 64, show(badJson));
    assert.match(badJson.stderr, /--data: not valid JSON/);
    const badMethod = await cli(["publish-data-update", "-s", target, "--data", "1", "--save-method", "POST"]);
    assert.equal(badMethod.code, 64, show(badMethod));
    assert.match(badMethod.stderr, /--save-method: expected PUT, PATCH or DELETE, got "POST"/);
    const unknownFlag = await cli(["publish-data-update", "-s", target, "--data", "1", "--dest-path", "/x"]);
    assert.equal(unknownFlag.code, 64, show(unknownFlag));
    assert.match(unknownFlag.stderr, /unknown option '--dest-path'/);
    assert.equal(source.requests.length, requestsBefore, "no request was sent");
  });

  test("status of a known update: a table (or --json, or --wait); of an unknown one: exit 1", async () => {
    const published = await cli(["publish-data-update", "-s", server.url, "--data", '"on"', "--dst-path", "/cli/status"]);
    assert.equal(published.code, 0, show(published));
    const id = publishedId(published);
    await waitFor(async () => ((await call(`${server.url}/updates/${id}`)).json as { complete?: boolean }).complete === true, { message: `update ${id} to complete` });

    const table = await cli(["status", id, "-s", server.url]);
    assert.equal(table.code, 0, show(table));
    assert.match(table.stdout, new RegExp(`update ${id} at position \\d+: 1/1 applied, 0 failed, 0 pending`));
    assert.match(table.stdout, /cli-client-0\s+APPLIED\s+\d+ ms/);
    assert.ok(!table.stdout.includes("\u001b["), "no colors when stdout is not a TTY");

    const json = await cli(["status", id, "-s", server.url, "--json"]);
    assert.equal(json.code, 0, show(json));
    const parsed = JSON.parse(json.stdout) as { update_id: string; clients: Array<{ client_id: string; state: string }> };
    assert.equal(parsed.update_id, id);
    assert.deepEqual(parsed.clients.map((c) => [c.client_id, c.state]), [["cli-client-0", "DELIVERY_STATE_APPLIED"]]);

    const waited = await cli(["status", id, "-s", server.url, "--wait", "--timeout", "5"]);
    assert.equal(waited.code, 0, show(waited));
    assert.match(waited.stderr, /delivery: 1\/1 applied/);

    const unknown = await cli(["status", "no-such-update", "-s", server.url]);
    assert.equal(unknown.code, 1, show(unknown));
    assert.match(unknown.stderr, /unknown update "no-such-update"/);
  });

  test("--wait exits 2 at --timeout while a client is still pending, listing it", async () => {
    // A source that accepts the request and never answers keeps the client fetching.
    const silent = http.createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    try {
      const url = `http://127.0.0.1:${(silent.address() as AddressInfo).port}/silent`;
      const result = await cli(["publish-data-update", "-s", server.url, "--src-url", url, "--dst-path", "/cli/silent", "--wait", "--timeout", "1"]);
      assert.equal(result.code, 2, show(result));
      assert.match(result.stdout, /0\/1 applied, 0 failed, 1 pending/);
      assert.match(result.stdout, /cli-client-0\s+PENDING/);
      assert.match(result.stdout, /timed out after 1 s with 1 client\(s\) pending/);
    } finally {
      silent.closeAllConnections();
      await new Promise((resolve) => silent.close(resolve));
    }
  });
});

describe("obtain-token against a secured server", () => {
  const keys = rsaKeys();
  let server: RunningServer;
  let client: RunningClient;

  before(async () => {
    server = await startServer(authEnv(keys));
    client = await startClient(server.url, { OPAL_CLIENT_TOKEN: await issueToken(server.url, { type: "client" }), OPAL_AUTH_PUBLIC_KEY: keys.publicPem });
    await waitReady(client);
  });

  after(async () => {
    await client?.stop();
    await server?.stop();
  });

  test("it prints a datasource token with the asked claims, and that token publishes", async () => {
    const issued = await cli(["obtain-token", MASTER_TOKEN, "--server-url", server.url, "--type", "datasource", "--ttl", "1 days", "--claims", '{"permitted_topics": ["policy_data"]}']);
    assert.equal(issued.code, 0, show(issued));
    const token = issued.stdout.trim();
    assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/, "the token alone");
    const payload = JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString()) as { peer_type: string; permitted_topics: string[]; exp: number; iat: number };
    assert.equal(payload.peer_type, "datasource");
    assert.deepEqual(payload.permitted_topics, ["policy_data"]);
    assert.equal(payload.exp - payload.iat, 86_400);

    const refused = await cli(["publish-data-update", "-s", server.url, "--data", '"no token"', "--dst-path", "/cli/secured"]);
    assert.equal(refused.code, 3, show(refused));
    assert.match(refused.stderr, /HTTP 401/);

    const published = await cli(["publish-data-update", token, "-s", server.url, "--data", '"with token"', "--dst-path", "/cli/secured", "--wait", "--timeout", "20"]);
    assert.equal(published.code, 0, show(published));
    await waitForData(client, "/cli/secured", "with token");

    const fromEnv = await cli(["status", publishedId(published), "-s", server.url], { OPAL_CLIENT_TOKEN: token });
    assert.equal(fromEnv.code, 0, show(fromEnv));
  });

  test("--json prints the whole answer; a wrong master token exits 3", async () => {
    const json = await cli(["obtain-token", "-s", server.url, "--type", "listener", "--ttl", "PT1H", "--json"], { OPAL_MASTER_TOKEN: MASTER_TOKEN });
    assert.equal(json.code, 0, show(json));
    const answer = JSON.parse(json.stdout) as { token: string; type: string; details: { type: string } };
    assert.equal(answer.type, "bearer");
    assert.equal(answer.details.type, "listener");

    const wrong = await cli(["obtain-token", "not-the-master-token", "-s", server.url]);
    assert.equal(wrong.code, 3, show(wrong));
    assert.match(wrong.stderr, /HTTP 401/);
  });
});

describe("generate-secret", () => {
  test("OPAL's default: 32 random bytes, URL-safe", async () => {
    const [first, second] = await Promise.all([cli(["generate-secret"]), cli(["generate-secret"])]);
    assert.equal(first.code, 0, show(first));
    assert.match(first.stdout, /^[\w-]{43}\n$/);
    assert.notEqual(first.stdout, second.stdout);
  });

  test("--size and --format", async () => {
    const hex = await cli(["generate-secret", "--size", "16", "--format", "hex"]);
    assert.match(hex.stdout, /^[0-9a-f]{32}\n$/);
    const base64 = await cli(["generate-secret", "--size", "10", "--format", "base64"]);
    assert.equal(Buffer.from(base64.stdout.trim(), "base64").length, 10);
    const bad = await cli(["generate-secret", "--format", "rot13"]);
    assert.equal(bad.code, 64, show(bad));
    assert.match(bad.stderr, /--format/);
  });
});

describe("print-config", () => {
  const keys = rsaKeys();
  const secrets = {
    master: "master-s3cret-31337",
    header: "Bearer hdr-s3cret-42",
    repoPassword: "repo-s3cret-pw",
    clientToken: "client-s3cret-token",
    storeToken: "opa-s3cret-token",
  };

  test("server: values as loaded, every secret redacted", async () => {
    const result = await cli(["print-config", "server"], {
      ...authEnv(keys),
      OPAL_AUTH_MASTER_TOKEN: secrets.master,
      OPAL_SERVER_PORT: "7123",
      OPAL_POLICY_REPO_URL: `https://bot:${secrets.repoPassword}@git.example/policy.git`,
      OPAL_DATA_CONFIG_SOURCES: JSON.stringify({ config: { entries: [{ url: "https://svc.example/users", config: { headers: { Authorization: secrets.header, Accept: "application/json" } }, dst_path: "/users" }] } }),
    });
    assert.equal(result.code, 0, show(result));
    for (const secret of [...Object.values(secrets), "PRIVATE KEY", keys.privatePem.split("\n")[1] ?? "?"]) assert.ok(!result.stdout.includes(secret), `${secret} printed`);
    const config = JSON.parse(result.stdout) as {
      port: number;
      auth: { masterToken: string; privateKey: string; publicKeys: string[] };
      policy: { type: string; repoUrl: string };
      dataConfigSources: { config: { entries: Array<{ url: string; dst_path: string; config: { headers: Record<string, string> } }> } };
      environment?: unknown;
    };
    assert.equal(config.port, 7123);
    assert.equal(config.auth.masterToken, "[redacted]");
    assert.equal(config.auth.privateKey, "[redacted]");
    assert.deepEqual(config.auth.publicKeys, ["<rsa public key>"]);
    assert.equal(config.policy.type, "git");
    assert.match(config.policy.repoUrl, /^https:\/\/\*\*\*@git\.example\/policy\.git$/);
    const entry = config.dataConfigSources.config.entries[0];
    assert.equal(entry?.url, "https://svc.example/users");
    assert.equal(entry?.dst_path, "/users");
    assert.deepEqual(entry?.config.headers, { Authorization: "[redacted]", Accept: "application/json" });
    assert.equal(config.environment, undefined, "the raw environment is not printed");
  });

  test("client: values as loaded, tokens redacted", async () => {
    const result = await cli(["print-config", "client"], {
      OPAL_SERVER_URL: "http://opal.example:7002",
      OPAL_CLIENT_TOKEN: secrets.clientToken,
      OPAL_DATA_TOPICS: "policy_data/users,billing",
      OPAL_INLINE_OPA_ENABLED: "false",
      OPAL_POLICY_STORE_AUTH_TYPE: "token",
      OPAL_POLICY_STORE_AUTH_TOKEN: secrets.storeToken,
    });
    assert.equal(result.code, 0, show(result));
    for (const secret of Object.values(secrets)) assert.ok(!result.stdout.includes(secret), `${secret} printed`);
    const config = JSON.parse(result.stdout) as { serverUrls: string[]; token: string; dataTopics: string[]; policyStore: { authToken: string } };
    assert.deepEqual(config.serverUrls, ["http://opal.example:7002"]);
    assert.deepEqual(config.dataTopics, ["policy_data/users", "billing"]);
    assert.equal(config.token, "[redacted]");
    assert.equal(config.policyStore.authToken, "[redacted]");
  });

  test("a bad variable exits 2 naming it, as the run commands do", async () => {
    const result = await cli(["print-config"], { OPAL_SERVER_PORT: "seventy" });
    assert.equal(result.code, 2, show(result));
    assert.match(result.stderr, /OPAL_SERVER_PORT: expected an integer, got "seventy"/);
    assert.equal(result.stdout, "");
  });
});

test("--help of each verb lists its flags", async () => {
  const verbs: Record<string, string[]> = {
    "publish-data-update": ["--src-url", "--topic", "-t,", "--dst-path", "--save-method", "--data", "--entries", "--src-config", "--server-url", "-s,", "--reason", "--token", "--wait", "--timeout", "[token]"],
    "obtain-token": ["[master-token]", "--server-url", "--type", "--ttl", "--claims", "--json"],
    "generate-secret": ["--size", "--format", "urlsafe", "hex"],
    "print-config": ["[part]", "server", "client", "[redacted]"],
    status: ["<update-id>", "--server-url", "--token", "--wait", "--timeout", "--json"],
  };
  const results = await Promise.all(Object.keys(verbs).map((verb) => cli([verb, "--help"])));
  Object.entries(verbs).forEach(([verb, flags], index) => {
    const result = results[index] as CliResult;
    assert.equal(result.code, 0, `${verb}: ${show(result)}`);
    for (const flag of flags) assert.ok(result.stdout.includes(flag), `${verb} --help mentions ${flag}:\n${result.stdout}`);
  });
});

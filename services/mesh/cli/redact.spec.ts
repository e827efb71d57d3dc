import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { test } from "node:test";
import { REDACTED, isSecretName, redactSecrets, redactUrlCredentials } from "./redact.js";

const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });

test("names that hold secrets, and names that only describe one", async (t) => {
  const cases: Array<[string, boolean]> = [
    ["token", true],
    ["masterToken", true],
    ["authToken", true],
    ["bundleToken", true],
    ["secret", true],
    ["password", true],
    ["passphrase", true],
    ["privateKey", true],
    ["sshKey", true],
    ["key", true],
    ["x-api-key", true],
    ["api_key_id", true],
    ["Authorization", true],
    ["connection_params", true],
    ["publicKeys", false],
    ["publicKey", false],
    ["secret_header_name", false],
    ["secret_type", false],
    ["keyType", false],
    ["url", false],
    ["clientId", false],
    ["dataTopics", false],
  ];
  for (const [name, secret] of cases) await t.test(name, () => assert.equal(isSecretName(name), secret));
});

test("URL credentials", async (t) => {
  const cases: Array<[string, string, (out: string) => void]> = [
    ["password in userinfo", "https://alice:pa55@git.example/repo.git", (out) => assert.ok(!out.includes("pa55") && !out.includes("alice"), out)],
    ["token in query", "https://api.example/data?access_token=abc123&page=2", (out) => assert.ok(!out.includes("abc123") && out.includes("page=2"), out)],
    ["postgres DSN", "postgresql://app:hunter2@db:5432/app", (out) => assert.ok(!out.includes("hunter2"), out)],
    ["plain URL kept exactly", "http://localhost:7002", (out) => assert.equal(out, "http://localhost:7002")],
    ["not a URL", "policy_data", (out) => assert.equal(out, "policy_data")],
  ];
  for (const [name, input, check] of cases) await t.test(name, () => check(redactUrlCredentials(input)));
});

test("a server-like configuration keeps its values and loses its secrets", () => {
  const config = {
    port: 7002,
    position: 17n,
    auth: { privateKey, publicKeys: [publicKey], masterToken: "m4ster", audience: "https://api.opal.ac/v1/" },
    token: undefined,
    policy: { repoUrl: "https://bot:gh-s3cret@github.com/acme/policy.git", sshKey: "-----BEGIN OPENSSH PRIVATE KEY-----", webhook: { secret: "hook-s3cret", params: { secret_header_name: "x-hook" } } },
    tls: { cert: Buffer.from("cert"), key: Buffer.from("-----BEGIN PRIVATE KEY-----"), clientCa: undefined },
    broadcast: { sasl: { mechanism: "plain", username: "kafka", password: "k4fka" } },
    dataConfigSources: {
      config: {
        entries: [
          {
            url: "https://svc/users?api_key=q-s3cret",
            config: { headers: { Authorization: "Bearer hdr-s3cret", "X-Tenant": "acme-s3cret", "Content-Type": "application/json" } },
            topics: ["policy_data"],
          },
          { url: "postgresql://db/app", config: { fetcher: "PostgresFetchProvider", connection_params: { password: "pg-s3cret" }, query: "select 1" } },
        ],
      },
    },
  };
  const printed = JSON.stringify(redactSecrets(config));
  for (const secret of ["m4ster", "gh-s3cret", "OPENSSH", "hook-s3cret", "PRIVATE KEY", "k4fka", "q-s3cret", "hdr-s3cret", "acme-s3cret", "pg-s3cret"]) {
    assert.ok(!printed.includes(secret), `${secret} leaked: ${printed}`);
  }
  const redacted = redactSecrets(config) as typeof config & { token: unknown; position: unknown };
  assert.equal(redacted.port, 7002);
  assert.equal(redacted.position, "17");
  assert.equal(redacted.token, null, "an unset secret stays visible as not set");
  assert.equal(redacted.auth.masterToken, REDACTED);
  assert.equal(redacted.auth.privateKey, REDACTED);
  assert.deepEqual(redacted.auth.publicKeys, ["<ec public key>"]);
  assert.equal(redacted.auth.audience, "https://api.opal.ac/v1/");
  assert.equal(redacted.tls.cert, "<4 bytes>");
  assert.equal(redacted.tls.key, REDACTED);
  assert.equal(redacted.broadcast.sasl.username, "kafka");
  assert.equal(redacted.policy.webhook.params.secret_header_name, "x-hook");
  const entry = redacted.dataConfigSources.config.entries[0] as { config: { headers: Record<string, unknown> }; topics: unknown };
  assert.equal(entry.config.headers["Content-Type"], "application/json");
  assert.equal(entry.config.headers.Authorization, REDACTED);
  assert.deepEqual(entry.topics, ["policy_data"]);
  assert.equal(redacted.dataConfigSources.config.entries[1]?.config.query, "select 1");
});

test("cycles, shared objects and exotic values", () => {
  const shared = { attempts: 2 };
  const looped: Record<string, unknown> = { name: "a", tags: new Set(["x"]), byId: new Map([["k", 1]]), run: () => 1, first: shared, second: shared };
  looped.self = looped;
  assert.deepEqual(redactSecrets(looped), { name: "a", tags: ["x"], byId: { k: 1 }, run: null, first: { attempts: 2 }, second: { attempts: 2 }, self: "<cycle>" });
});

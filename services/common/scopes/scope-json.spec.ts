import { test } from "node:test";
import assert from "node:assert/strict";
import { equals } from "@bufbuild/protobuf";
import { SaveMethod } from "../../../gen/opal/mesh/v1/data_pb.js";
import { ScopeSchema } from "../../../gen/opal/mesh/v1/scope_pb.js";
import { ValidationError } from "../validation-error.js";
import { parseScope, sameDataConfig, samePolicySource, scopeToJson } from "./scope-json.js";

/** The field a ValidationError names, or fails the test when `parse` accepts its input. */
function rejectedField(parse: () => unknown): string {
  try {
    parse();
  } catch (error) {
    if (error instanceof ValidationError) return error.field;
    throw error;
  }
  assert.fail("expected a ValidationError, but the input was accepted");
}

const REPO = "https://github.com/acme/policies.git";

function scopeJson(policy: Record<string, unknown> = {}, rest: Record<string, unknown> = {}): Record<string, unknown> {
  return { scope_id: "acme", policy: { source_type: "git", url: REPO, ...policy }, ...rest };
}

test("parseScope stores OPAL's defaults explicitly", () => {
  const scope = parseScope({ scope_id: "acme", policy: { source_type: "git", url: REPO } });
  assert.equal(scope.scopeId, "acme");
  assert.equal(scope.policy?.url, REPO);
  assert.equal(scope.policy?.auth, undefined);
  assert.deepEqual(scope.policy?.directories, ["."]);
  assert.deepEqual(scope.policy?.extensions, [".rego", ".json"]);
  assert.deepEqual(scope.policy?.bundleIgnore, []);
  assert.equal(scope.policy?.manifest, ".manifest");
  assert.equal(scope.policy?.pollUpdates, false);
  assert.equal(scope.policy?.branch, "main");
  assert.deepEqual(scope.data?.entries, []);
  assert.equal(scope.data?.externalSourceUrl, "");
});

test("parseScope keeps what is given", () => {
  const scope = parseScope(
    scopeJson(
      { directories: ["policies", "shared"], extensions: [".rego"], bundle_ignore: ["tests/*"], manifest: "m.json", poll_updates: true, branch: "prod" },
      { data: { config: { entries: [{ url: "https://data.example.com/users", topics: ["users"], dst_path: "users" }] } } },
    ),
  );
  assert.deepEqual(scope.policy?.directories, ["policies", "shared"]);
  assert.deepEqual(scope.policy?.extensions, [".rego"]);
  assert.deepEqual(scope.policy?.bundleIgnore, ["tests/*"]);
  assert.equal(scope.policy?.manifest, "m.json");
  assert.equal(scope.policy?.pollUpdates, true);
  assert.equal(scope.policy?.branch, "prod");
  assert.equal(scope.data?.entries.length, 1);
  assert.equal(scope.data?.entries[0]?.dstPath, "/users");
  assert.equal(scope.data?.entries[0]?.saveMethod, SaveMethod.PUT);
});

test("parseScope reads null like an omitted field", () => {
  const scope = parseScope(scopeJson({ auth: null, bundle_ignore: null, directories: null, poll_updates: null }, { data: null }));
  assert.equal(scope.policy?.auth, undefined);
  assert.deepEqual(scope.policy?.bundleIgnore, []);
  assert.deepEqual(scope.policy?.directories, ["."]);
  assert.deepEqual(scope.data?.entries, []);
});

test("parseScope reads every auth type", async (t) => {
  await t.test("none", () => {
    assert.equal(parseScope(scopeJson({ auth: { auth_type: "none" } })).policy?.auth, undefined);
  });
  await t.test("ssh", () => {
    const auth = parseScope(scopeJson({ auth: { auth_type: "ssh", username: "git", private_key: "PRIVATE", public_key: "PUBLIC" } })).policy?.auth;
    assert.equal(auth?.kind.case, "ssh");
    assert.deepEqual(
      auth?.kind.case === "ssh" ? { ...auth.kind.value } : undefined,
      { $typeName: "opal.mesh.v1.GitSshAuth", username: "git", privateKey: "PRIVATE", publicKey: "PUBLIC" },
    );
  });
  await t.test("ssh without a public key", () => {
    const auth = parseScope(scopeJson({ auth: { auth_type: "ssh", username: "git", private_key: "PRIVATE", public_key: null } })).policy?.auth;
    assert.equal(auth?.kind.case === "ssh" ? auth.kind.value.publicKey : undefined, "");
  });
  await t.test("github_token", () => {
    const auth = parseScope(scopeJson({ auth: { auth_type: "github_token", token: "ghp_secret" } })).policy?.auth;
    assert.equal(auth?.kind.case === "githubToken" ? auth.kind.value.token : undefined, "ghp_secret");
  });
  await t.test("userpass", () => {
    const auth = parseScope(scopeJson({ auth: { auth_type: "userpass", username: "alice", password: "s3cret" } })).policy?.auth;
    assert.equal(auth?.kind.case, "userpass");
    assert.equal(auth?.kind.case === "userpass" ? `${auth.kind.value.username}:${auth.kind.value.password}` : undefined, "alice:s3cret");
  });
});

test("parseScope accepts scope ids up to 128 characters of [A-Za-z0-9_.-]", () => {
  for (const id of ["a", "Acme-1", "0.tenant_b", `a${"b".repeat(127)}`]) assert.equal(parseScope({ ...scopeJson(), scope_id: id }).scopeId, id);
});

test("parseScope names the field of every error", async (t) => {
  const cases: Array<[string, unknown, string]> = [
    ["not an object", [], ""],
    ["unknown top-level key", { ...scopeJson(), polcy: {} }, "polcy"],
    ["missing scope_id", { policy: scopeJson().policy }, "scope_id"],
    ["scope_id not a string", { ...scopeJson(), scope_id: 7 }, "scope_id"],
    ["scope_id empty", { ...scopeJson(), scope_id: "" }, "scope_id"],
    ["scope_id starts with a dash", { ...scopeJson(), scope_id: "-acme" }, "scope_id"],
    ["scope_id with a slash", { ...scopeJson(), scope_id: "a/b" }, "scope_id"],
    ["scope_id of 129 characters", { ...scopeJson(), scope_id: "a".repeat(129) }, "scope_id"],
    ["missing policy", { scope_id: "acme" }, "policy"],
    ["policy not an object", { scope_id: "acme", policy: "git" }, "policy"],
    ["unknown policy key", scopeJson({ brnach: "main" }), "policy.brnach"],
    ["source_type not git", scopeJson({ source_type: "api" }), "policy.source_type"],
    ["missing url", { scope_id: "acme", policy: { source_type: "git" } }, "policy.url"],
    ["empty url", scopeJson({ url: " " }), "policy.url"],
    ["url not a string", scopeJson({ url: 1 }), "policy.url"],
    ["auth not an object", scopeJson({ auth: "none" }), "policy.auth"],
    ["auth without auth_type", scopeJson({ auth: { token: "x" } }), "policy.auth.auth_type"],
    ["unknown auth_type", scopeJson({ auth: { auth_type: "oauth" } }), "policy.auth.auth_type"],
    ["unknown auth key", scopeJson({ auth: { auth_type: "github_token", token: "x", tokne: "y" } }), "policy.auth.tokne"],
    ["auth key of another type", scopeJson({ auth: { auth_type: "none", password: "x" } }), "policy.auth.password"],
    ["ssh without username", scopeJson({ auth: { auth_type: "ssh", private_key: "k" } }), "policy.auth.username"],
    ["ssh without private_key", scopeJson({ auth: { auth_type: "ssh", username: "git" } }), "policy.auth.private_key"],
    ["ssh public_key not a string", scopeJson({ auth: { auth_type: "ssh", username: "git", private_key: "k", public_key: 1 } }), "policy.auth.public_key"],
    ["github_token without token", scopeJson({ auth: { auth_type: "github_token" } }), "policy.auth.token"],
    ["github_token with empty token", scopeJson({ auth: { auth_type: "github_token", token: "" } }), "policy.auth.token"],
    ["userpass without username", scopeJson({ auth: { auth_type: "userpass", password: "p" } }), "policy.auth.username"],
    ["userpass without password", scopeJson({ auth: { auth_type: "userpass", username: "u" } }), "policy.auth.password"],
    ["directories not a list", scopeJson({ directories: "." }), "policy.directories"],
    ["directories with a number", scopeJson({ directories: [".", 2] }), "policy.directories[1]"],
    ["extensions with an empty string", scopeJson({ extensions: [""] }), "policy.extensions[0]"],
    ["bundle_ignore not a list", scopeJson({ bundle_ignore: "tests" }), "policy.bundle_ignore"],
    ["manifest not a string", scopeJson({ manifest: 1 }), "policy.manifest"],
    ["branch empty", scopeJson({ branch: "" }), "policy.branch"],
    ["poll_updates a string", scopeJson({ poll_updates: "true" }), "policy.poll_updates"],
    ["data not an object", scopeJson({}, { data: [] }), "data"],
    ["data with neither config nor external_source_url", scopeJson({}, { data: {} }), "data"],
    ["data entry without url", scopeJson({}, { data: { config: { entries: [{ topics: ["x"] }] } } }), "data.config.entries[0].url"],
    ["data external_source_url not http", scopeJson({}, { data: { external_source_url: "ftp://x" } }), "data.external_source_url"],
  ];
  for (const [name, input, field] of cases) {
    await t.test(name, () => assert.equal(rejectedField(() => parseScope(input)), field));
  }
});

test("error messages explain the scope_id rule and list the auth types", () => {
  assert.throws(() => parseScope({ ...scopeJson(), scope_id: "a b" }), /\^\[A-Za-z0-9\]/);
  assert.throws(() => parseScope(scopeJson({ auth: { auth_type: "oauth" } })), /"none", "ssh", "github_token", "userpass"/);
});

test("error messages never echo a secret", () => {
  assert.throws(
    () => parseScope(scopeJson({ auth: { auth_type: "userpass", username: "alice", password: 12345678 } })),
    (error: Error) => !error.message.includes("12345678"),
  );
});

test("scopeToJson hides secrets unless asked for them", async (t) => {
  const auths: Array<Record<string, unknown>> = [
    { auth_type: "none" },
    { auth_type: "ssh", username: "git", private_key: "PRIVATE", public_key: "PUBLIC" },
    { auth_type: "github_token", token: "ghp_secret" },
    { auth_type: "userpass", username: "alice", password: "s3cret" },
  ];
  for (const auth of auths) {
    await t.test(String(auth.auth_type), () => {
      const scope = parseScope(scopeJson({ auth }));
      const hidden = scopeToJson(scope, { includeSecrets: false });
      assert.deepEqual((hidden.policy as Record<string, unknown>).auth, { auth_type: auth.auth_type });
      for (const secret of ["PRIVATE", "ghp_secret", "s3cret"]) assert.ok(!JSON.stringify(hidden).includes(secret));
      const shown = scopeToJson(scope, { includeSecrets: true });
      assert.deepEqual((shown.policy as Record<string, unknown>).auth, auth);
    });
  }
});

test("scopeToJson writes OPAL's shape", () => {
  const json = scopeToJson(parseScope(scopeJson()), { includeSecrets: false });
  assert.deepEqual(json, {
    scope_id: "acme",
    policy: {
      source_type: "git",
      url: REPO,
      auth: { auth_type: "none" },
      directories: ["."],
      extensions: [".rego", ".json"],
      bundle_ignore: [],
      manifest: ".manifest",
      poll_updates: false,
      branch: "main",
    },
    data: { config: { entries: [] }, external_source_url: null },
  });
});

test("scopeToJson emits external_source_url", () => {
  const json = scopeToJson(parseScope(scopeJson({}, { data: { external_source_url: "https://data.example.com/config" } })), { includeSecrets: false });
  assert.deepEqual(json.data, { config: null, external_source_url: "https://data.example.com/config" });
});

test("parseScope(scopeToJson(scope)) returns the same scope", async (t) => {
  const inputs: Array<[string, Record<string, unknown>]> = [
    ["defaults", scopeJson()],
    ["ssh without public key", scopeJson({ auth: { auth_type: "ssh", username: "git", private_key: "PRIVATE" } })],
    ["ssh with public key", scopeJson({ auth: { auth_type: "ssh", username: "git", private_key: "PRIVATE", public_key: "PUBLIC" } })],
    ["github_token", scopeJson({ auth: { auth_type: "github_token", token: "ghp_secret" }, bundle_ignore: ["a/**"], poll_updates: true })],
    ["userpass", scopeJson({ auth: { auth_type: "userpass", username: "alice", password: "s3cret" }, directories: ["x", "y"], branch: "dev" })],
    [
      "data entries",
      scopeJson(
        {},
        {
          data: {
            config: {
              entries: [
                { url: "https://data.example.com/users", config: { headers: { a: "b" } }, topics: ["users"], dst_path: "/users", periodic_update_interval: 30 },
                { data: { admins: ["alice"] }, topics: ["admins"], dst_path: "admins", save_method: "PUT" },
                { url: "", dst_path: "/old", save_method: "DELETE" },
              ],
            },
          },
        },
      ),
    ],
    ["external data", scopeJson({}, { data: { external_source_url: "https://data.example.com/config" } })],
  ];
  for (const [name, input] of inputs) {
    await t.test(name, () => {
      const scope = parseScope(input);
      const again = parseScope(scopeToJson(scope, { includeSecrets: true }));
      assert.ok(equals(ScopeSchema, scope, again));
      assert.deepEqual(again, scope);
    });
  }
});

test("sameDataConfig and samePolicySource", async (t) => {
  const base = parseScope(scopeJson({ auth: { auth_type: "github_token", token: "one" } }));
  const withData = parseScope(scopeJson({ auth: { auth_type: "github_token", token: "one" } }, { data: { config: { entries: [{ url: "https://d.example.com" }] } } }));
  const otherToken = parseScope(scopeJson({ auth: { auth_type: "github_token", token: "two" } }));
  const otherBranch = parseScope(scopeJson({ auth: { auth_type: "github_token", token: "one" }, branch: "dev" }));
  await t.test("a scope is the same as a copy of itself", () => {
    const copy = parseScope(scopeToJson(base, { includeSecrets: true }));
    assert.ok(sameDataConfig(base, copy));
    assert.ok(samePolicySource(base, copy));
  });
  await t.test("data changes only the data config", () => {
    assert.ok(!sameDataConfig(base, withData));
    assert.ok(samePolicySource(base, withData));
  });
  await t.test("credentials and branch change the policy source", () => {
    assert.ok(!samePolicySource(base, otherToken));
    assert.ok(!samePolicySource(base, otherBranch));
    assert.ok(sameDataConfig(base, otherBranch));
  });
  await t.test("absent scopes", () => {
    assert.ok(sameDataConfig(undefined, undefined));
    assert.ok(samePolicySource(undefined, undefined));
    assert.ok(!sameDataConfig(base, undefined));
    assert.ok(!samePolicySource(undefined, base));
  });
});

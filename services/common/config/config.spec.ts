import { test } from "node:test";
import assert from "node:assert/strict";
import { loadClientConfig, opaUrlFromAddr } from "./client-config.js";
import { ConfigError } from "./env-reader.js";
import { loadServerConfig } from "./server-config.js";

test("server defaults match OPAL", () => {
  const config = loadServerConfig({});
  assert.equal(config.port, 7002);
  assert.equal(config.host, "127.0.0.1");
  assert.equal(config.dataConfigSources, undefined);
});

test("server reads OPAL_DATA_CONFIG_SOURCES in OPAL's format", () => {
  const config = loadServerConfig({
    OPAL_SERVER_BIND_PORT: "7100",
    OPAL_DATA_CONFIG_SOURCES: JSON.stringify({
      config: { entries: [{ url: "http://example.com/users", topics: ["policy_data/users"], dst_path: "users", periodic_update_interval: 30 }] },
    }),
  });
  assert.equal(config.port, 7100);
  const entry = config.dataConfigSources?.entries[0];
  assert.equal(entry?.dstPath, "/users");
  assert.equal(entry?.periodicUpdateInterval, 30);
});

test("every bad value is named in one error", () => {
  assert.throws(
    () =>
      loadServerConfig({
        OPAL_SERVER_BIND_PORT: "seventy",
        OPAL_DATA_CONFIG_SOURCES: '{"config": {"entries": [{"url": "", "topics": ["x"]}]}}',
        OPAL_LOG_LEVEL: "LOUD",
      }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.problems.length, 3);
      assert.match(error.message, /OPAL_SERVER_BIND_PORT: expected an integer/);
      assert.match(error.message, /OPAL_DATA_CONFIG_SOURCES: config\.entries\[0\]\.url: is empty/);
      assert.match(error.message, /OPAL_LOG_LEVEL: expected one of/);
      return true;
    },
  );
});

test("OPAL_DATA_CONFIG_SOURCES that is not JSON is named", () => {
  assert.throws(() => loadServerConfig({ OPAL_DATA_CONFIG_SOURCES: "{entries" }), /OPAL_DATA_CONFIG_SOURCES: not valid JSON/);
});

test("client defaults match OPAL", () => {
  const config = loadClientConfig({});
  assert.deepEqual(config.serverUrls, ["http://localhost:7002"]);
  assert.deepEqual(config.dataTopics, ["policy_data"]);
  assert.equal(config.apiPort, 7000);
  assert.equal(config.inlineOpa.enabled, true);
  assert.equal(config.policyStore.url, "http://127.0.0.1:8181");
  assert.deepEqual(config.policySubscriptionDirs, ["."]);
  assert.equal(config.dataUpdaterRetry.attempts, 5);
  assert.match(config.clientId, /^CLIENT_[0-9a-f]{32}$/);
});

test("client lists: comma topics, colon dirs, JSON arrays, fail-over URLs", () => {
  const config = loadClientConfig({
    OPAL_SERVER_URL: "http://a:7002,http://b:7002/",
    OPAL_DATA_TOPICS: "policy_data/users, tenants",
    OPAL_POLICY_SUBSCRIPTION_DIRS: "rbac:rbac/admin:abac",
    OPAL_FETCH_PROVIDER_MODULES: '["opal-fetcher-x"]',
    OPAL_INLINE_OPA_CONFIG: '{"addr": "0.0.0.0:8282"}',
  });
  assert.deepEqual(config.serverUrls, ["http://a:7002", "http://b:7002"]);
  assert.deepEqual(config.dataTopics, ["policy_data/users", "tenants"]);
  assert.deepEqual(config.policySubscriptionDirs, ["abac", "rbac"]);
  assert.deepEqual(config.fetchProviderModules, ["opal-fetcher-x"]);
  assert.equal(config.policyStore.url, "http://127.0.0.1:8282");
});

test("client rejects bad values by name", () => {
  assert.throws(
    () => loadClientConfig({ OPAL_SERVER_URL: "ftp://x", OPAL_INLINE_OPA_ENABLED: "maybe", OPAL_DATA_UPDATER_CONN_RETRY: '{"wait_strategy": "sometimes"}' }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /OPAL_SERVER_URL: entry 0 is not an http\(s\) URL/);
      assert.match(error.message, /OPAL_INLINE_OPA_ENABLED: expected true or false/);
      assert.match(error.message, /OPAL_DATA_UPDATER_CONN_RETRY: wait_strategy must be one of/);
      return true;
    },
  );
});

test("opaUrlFromAddr reaches wildcard binds on loopback", () => {
  assert.equal(opaUrlFromAddr("0.0.0.0:8181"), "http://127.0.0.1:8181");
  assert.equal(opaUrlFromAddr(":9000"), "http://127.0.0.1:9000");
  assert.equal(opaUrlFromAddr("10.0.0.5:8181"), "http://10.0.0.5:8181");
});

test("OPAL_MESH_WRITABLE_SYSTEM_PATHS: parts of data.system, never the client's own documents", () => {
  assert.deepEqual(loadServerConfig({}).writableSystemPaths, []);
  assert.deepEqual(loadClientConfig({ OPAL_MESH_WRITABLE_SYSTEM_PATHS: "/system/authz,/system/log/" }).writableSystemPaths, ["/system/authz", "/system/log"]);
  for (const bad of ["/system/opal", "/system/opal_mesh/policy", "/system", "/users", "system/authz"]) {
    assert.throws(() => loadServerConfig({ OPAL_MESH_WRITABLE_SYSTEM_PATHS: bad }), /OPAL_MESH_WRITABLE_SYSTEM_PATHS/, bad);
    assert.throws(() => loadClientConfig({ OPAL_MESH_WRITABLE_SYSTEM_PATHS: bad }), /OPAL_MESH_WRITABLE_SYSTEM_PATHS/, bad);
  }
  assert.throws(() => loadServerConfig({ OPAL_DATA_CONFIG_SOURCES: JSON.stringify({ config: { entries: [{ url: "", data: 1, dst_path: "/system/x" }] } }) }), /OPAL_DATA_CONFIG_SOURCES.*config\.entries\[0\]\.dst_path/);
});

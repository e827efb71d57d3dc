import { test } from "node:test";
import assert from "node:assert/strict";
import { loadClientConfig } from "./client-config.js";
import { ConfigError } from "./env-reader.js";
import { DEFAULT_LISTENER_LIMITS } from "./listener-config.js";
import { loadServerConfig } from "./server-config.js";

test("listener limits default, and are read for the server and the client's API", () => {
  assert.deepEqual(loadServerConfig({}).listener, DEFAULT_LISTENER_LIMITS);
  assert.deepEqual(loadServerConfig({}).allowedOrigins, []);
  const env = { OPAL_MESH_HTTP_HEADERS_TIMEOUT_MS: "1000", OPAL_MESH_HTTP_IDLE_TIMEOUT_MS: "700", OPAL_MESH_HTTP_FIRST_BYTE_TIMEOUT_MS: "500", OPAL_MESH_MAX_CONNECTIONS: "8" };
  const expected = { headersTimeoutMs: 1000, idleTimeoutMs: 700, firstByteTimeoutMs: 500, maxConnections: 8 };
  assert.deepEqual(loadServerConfig(env).listener, expected);
  assert.deepEqual(loadClientConfig(env).apiListener, expected);
});

test("a bad limit or origin fails start-up naming the variable", () => {
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ OPAL_MESH_HTTP_HEADERS_TIMEOUT_MS: "soon" }, /OPAL_MESH_HTTP_HEADERS_TIMEOUT_MS: expected an integer/],
    [{ OPAL_MESH_HTTP_IDLE_TIMEOUT_MS: "0" }, /OPAL_MESH_HTTP_IDLE_TIMEOUT_MS: must be at least/],
    [{ OPAL_MESH_HTTP_FIRST_BYTE_TIMEOUT_MS: "-5" }, /OPAL_MESH_HTTP_FIRST_BYTE_TIMEOUT_MS: must be at least/],
    [{ OPAL_MESH_HTTP_HEADERS_TIMEOUT_MS: "400000" }, /OPAL_MESH_HTTP_HEADERS_TIMEOUT_MS: must be at most 300000/],
    [{ OPAL_MESH_MAX_CONNECTIONS: "0" }, /OPAL_MESH_MAX_CONNECTIONS: must be at least 1/],
    [{ OPAL_ALLOWED_ORIGINS: "https://ok.example,evil" }, /OPAL_ALLOWED_ORIGINS: "evil" is not an origin/],
    [{ OPAL_ALLOWED_ORIGINS: '["https://a.example/path"]' }, /OPAL_ALLOWED_ORIGINS: "https:\/\/a.example\/path" is not an origin/],
  ];
  for (const [env, expected] of cases) {
    assert.throws(() => loadServerConfig(env), (error: unknown) => error instanceof ConfigError && expected.test(error.message), JSON.stringify(env));
  }
  assert.deepEqual(loadServerConfig({ OPAL_ALLOWED_ORIGINS: '["https://a.example/", "http://localhost:3000", "*"]' }).allowedOrigins, ["https://a.example", "http://localhost:3000", "*"]);
});

import { test } from "node:test";
import assert from "node:assert/strict";
import { ConfigError } from "../common/config/env-reader.js";
import { loadServerConfig } from "../common/config/server-config.js";
import { silentLogger } from "../common/logger.js";
import { FileScopeStore } from "../common/scopes/file-scope-store.js";
import { KafkaScopeStore } from "../common/scopes/kafka-scope-store.js";
import { createScopeStore } from "./scope-store-factory.js";

const logger = silentLogger();

test("scopes off: no store", () => {
  assert.equal(createScopeStore(loadServerConfig({}), logger, "embedded"), undefined);
});

test("embedded without Kafka: the JSON file under OPAL_BASE_DIR", () => {
  const store = createScopeStore(loadServerConfig({ OPAL_SCOPES: "true", OPAL_BASE_DIR: "/var/lib/opal" }), logger, "embedded");
  assert.ok(store instanceof FileScopeStore);
  assert.equal(store.description, "file /var/lib/opal/scopes.json");
});

test("with Kafka, embedded or distributed: the compacted <channel>-scopes topic", () => {
  const config = loadServerConfig({ OPAL_SCOPES: "true", OPAL_BROADCAST_URI: "kafka://127.0.0.1:9092", OPAL_BROADCAST_CHANNEL_NAME: "events" });
  for (const deployment of ["embedded", "distributed"] as const) {
    const store = createScopeStore(config, logger, deployment);
    assert.ok(store instanceof KafkaScopeStore);
    assert.equal(store.description, "kafka topic events-scopes");
  }
});

test("distributed processes without Kafka have nowhere to share scopes: a configuration error naming OPAL_SCOPES", () => {
  assert.throws(() => createScopeStore(loadServerConfig({ OPAL_SCOPES: "true" }), logger, "distributed"), (error: unknown) => error instanceof ConfigError && /OPAL_SCOPES/.test(error.message) && /kafka/i.test(error.message));
});

test("a bad OPAL_SCOPES or OPAL_POLICY_REFRESH_INTERVAL stops start-up, naming it", () => {
  assert.throws(() => loadServerConfig({ OPAL_SCOPES: "maybe" }), /OPAL_SCOPES/);
  assert.throws(() => loadServerConfig({ OPAL_POLICY_REFRESH_INTERVAL: "-1" }), /OPAL_POLICY_REFRESH_INTERVAL/);
});

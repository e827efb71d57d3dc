/** The Kafka backbone over SASL/SCRAM-SHA-256: right credentials work; wrong ones fail start-up, clearly. */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { type RunningKafka, startTestKafka } from "./helpers/kafka.js";
import { startClient, startServer, waitForData, waitReady } from "./helpers/mesh.js";

let kafka: RunningKafka;
const user = { username: "mesh", password: "mesh-secret" };

before(async () => {
  kafka = await startTestKafka(user);
});

after(async () => {
  await kafka?.destroy();
});

function env(password: string): Record<string, string> {
  return {
    OPAL_BROADCAST_URI: `kafka://${kafka.bootstrap}`,
    OPAL_MESH_KAFKA_REPLICATION_FACTOR: "1",
    KAFKA_SECURITY_PROTOCOL: "SASL_PLAINTEXT",
    KAFKA_SASL_MECHANISM: "SCRAM-SHA-256",
    KAFKA_PLAIN_USERNAME: user.username,
    KAFKA_PLAIN_PASSWORD: password,
  };
}

test("with the right credentials updates flow through the SASL broker", async () => {
  const server = await startServer(env(user.password));
  const client = await startClient(server.url);
  try {
    await waitReady(client);
    await server.trigger.publishDataUpdate({ entries: [{ dstPath: "/sasl", topics: ["policy_data"], data: { kind: { case: "stringValue", value: "authenticated" } } }] });
    await waitForData(client, "/sasl", "authenticated");
  } finally {
    await client.stop();
    await server.stop();
  }
});

test("wrong credentials fail start-up with a clear error, at once, without the password", async () => {
  const started = Date.now();
  await assert.rejects(startServer(env("not-the-password")), (error: Error) => {
    assert.match(error.message, /SASL|authentication/i);
    assert.ok(!error.message.includes("not-the-password"), "the password is not in the error");
    return true;
  });
  assert.ok(Date.now() - started < 30_000, "no silent retrying forever");
});

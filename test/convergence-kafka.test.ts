/**
 * Every client holds the fleet's state on Kafka too (issue 13, item 4), in the distributed
 * deployment with every service its own process: the broadcaster killed with kill -9 and
 * started again, and the events topic emptied by retention (deleteTopicRecords), each
 * before a fresh client joins through a distributor started after it — so what the client
 * writes comes from the restarted broadcaster's snapshot (its checkpoint and the topic
 * after it), not from a process that saw every event. Updates go in through a trigger-api
 * and straight into the topic as OPAL JSON. Each client ends with its whole managed data
 * identical to that of the client connected from the start, which equals an ordered replay.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { Kafka, logLevel, type Admin, type Producer } from "kafkajs";
import { request } from "undici";
import { DeliveryChecker } from "./helpers/checker.js";
import { GitRepo, tempDir } from "./helpers/git-repo.js";
import { type RunningKafka, startTestKafka } from "./helpers/kafka.js";
import { decide, type RunningClient, startClient, waitReady } from "./helpers/mesh.js";
import { MixedUpdates } from "./helpers/mixed-updates.js";
import { freePort } from "./helpers/ports.js";
import { MeshProcess } from "./helpers/processes.js";
import { waitFor } from "./helpers/wait.js";

const TOPIC = "opal-mesh-convergence";
let kafka: RunningKafka;
let checker: DeliveryChecker;
let repo: GitRepo;
let producer: Producer;
let admin: Admin;
let broadcaster: MeshProcess;
let watcher: MeshProcess;
let trigger: MeshProcess;
const distributors: MeshProcess[] = [];
const clients: RunningClient[] = [];
let reference: RunningClient;
const mixed = new MixedUpdates(4);

const urlOf = (process: MeshProcess): string => `http://127.0.0.1:${process.env.OPAL_SERVER_BIND_PORT}`;

async function service(command: string, env: Record<string, string>): Promise<MeshProcess> {
  const port = await freePort();
  const common = { OPAL_SERVER_HOST: "127.0.0.1", OPAL_SERVER_BIND_PORT: String(port), OPAL_BROADCAST_URI: `kafka://${kafka.bootstrap}`, OPAL_BROADCAST_CHANNEL_NAME: TOPIC, OPAL_MESH_KAFKA_REPLICATION_FACTOR: "1" };
  return new MeshProcess(command, { ...common, ...env }, `http://127.0.0.1:${port}/healthcheck`);
}

async function distributor(): Promise<MeshProcess> {
  const started = await service("distributor", {
    OPAL_MESH_BROADCASTER_URLS: urlOf(broadcaster),
    OPAL_MESH_POLICY_WATCHER_URLS: urlOf(watcher),
    OPAL_MESH_STREAM_PORT: String(await freePort()),
    OPAL_DATA_CONFIG_SOURCES: JSON.stringify({ config: { entries: checker.baselineEntries() } }),
  });
  distributors.push(started);
  await started.ready();
  return started;
}

async function client(serverUrl: string, name: string): Promise<RunningClient> {
  const started = await startClient(serverUrl, { OPAL_CLIENT_STAT_ID: name });
  clients.push(started);
  await waitReady(started, 60_000);
  return started;
}

/** Through the trigger-api (retried while the broadcaster is away), or straight into the topic; returns the position. */
async function publish(json: Record<string, unknown>, straightIntoKafka: boolean): Promise<bigint> {
  if (straightIntoKafka) {
    const [result] = await producer.send({ topic: TOPIC, acks: -1, messages: [{ value: JSON.stringify(json) }] });
    return BigInt(result?.baseOffset ?? "0") + 1n;
  }
  return waitFor(
    async () => {
      const response = await request(`${urlOf(trigger)}/data/config`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(json) });
      const answer = (await response.body.json()) as { position?: number };
      return response.statusCode === 200 && answer.position !== undefined ? BigInt(answer.position) : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 100, message: "the trigger-api to accept the update" },
  );
}

async function publishMixed(count: number): Promise<void> {
  for (let n = 0; n < count; n++) await publish(mixed.update(), n % 2 === 1);
}

const publishChecks = (count: number) => checker.publishWith((json, index) => publish(json, index % 3 === 2), count);

before(async () => {
  kafka = await startTestKafka();
  checker = await new DeliveryChecker().start();
  repo = new GitRepo();
  repo.commit({ "rbac/policy.rego": 'package app.rbac\n\ndefault allow := false\n\nallow if input.user == "alice"\n' }, "initial");
  broadcaster = await service("broadcaster", { OPAL_MESH_SNAPSHOT_CHECKPOINT_INTERVAL_MS: "300" });
  await broadcaster.ready();
  watcher = await service("policy-watcher", { OPAL_MESH_BROADCASTER_URLS: urlOf(broadcaster), OPAL_POLICY_REPO_URL: repo.dir, OPAL_POLICY_REPO_MAIN_BRANCH: "main", OPAL_POLICY_REPO_CLONE_PATH: tempDir("opal-mesh-clones-") });
  trigger = await service("trigger-api", { OPAL_MESH_BROADCASTER_URLS: urlOf(broadcaster) });
  await Promise.all([watcher.ready(), trigger.ready()]);
  const first = await distributor();
  reference = await client(urlOf(first), "reference");
  const connection = new Kafka({ brokers: [kafka.bootstrap], logLevel: logLevel.NOTHING });
  producer = connection.producer({ idempotent: true, maxInFlightRequests: 1 });
  admin = connection.admin();
  await Promise.all([producer.connect(), admin.connect()]);
}, { timeout: 240_000 });

after(async () => {
  await producer?.disconnect().catch(() => undefined);
  await admin?.disconnect().catch(() => undefined);
  for (const started of clients) await started.stop();
  await Promise.all([...distributors, trigger, watcher, broadcaster].filter((process) => process !== undefined).map((process) => process.kill("SIGKILL")));
  await checker?.source.stop();
  await kafka?.destroy();
  repo?.remove();
});

test("the broadcaster killed with kill -9 and started again: a client joining through a new distributor ends identical", async (t) => {
  await publishMixed(300);
  await publishChecks(30);
  await checker.verify(reference);
  await broadcaster.kill("SIGKILL");
  broadcaster.restart();
  await broadcaster.ready();
  // While it was away, and right after: updates keep coming.
  await publishMixed(40);
  await publishChecks(10);
  const started = Date.now();
  const fresh = await client(urlOf(await distributor()), "after-broadcaster-restart");
  await publishChecks(5);
  await checker.same(reference, [{ name: "after-broadcaster-restart", reader: fresh }]);
  assert.deepEqual(await reference.read(mixed.root), mixed.read(mixed.root), "the reference equals an ordered replay");
  assert.equal(await decide(fresh, "app/rbac/allow", { user: "alice" }), true);
  t.diagnostic(`${mixed.paths().length} paths from 340 mixed updates and ${checker.count} numbered ones: the new client identical ${Date.now() - started} ms after its distributor was started`);
});

test("the events topic emptied by retention, then the broadcaster restarted: a client joining through a new distributor ends identical", async (t) => {
  await publishMixed(100);
  await publishChecks(10);
  await checker.verify(reference);
  const [partition] = await admin.fetchTopicOffsets(TOPIC);
  const high = partition?.high ?? "0";
  await admin.deleteTopicRecords({ topic: TOPIC, partitions: [{ partition: 0, offset: high }] });
  const [after] = await admin.fetchTopicOffsets(TOPIC);
  assert.equal(after?.low, high, "the topic holds no event any more");
  // A graceful stop writes the last checkpoint (the periodic ones may trail the head); the
  // restarted broadcaster can only have the snapshot from its checkpoints.
  await broadcaster.kill("SIGTERM");
  broadcaster.restart();
  await broadcaster.ready();
  const started = Date.now();
  const fresh = await client(urlOf(await distributor()), "after-retention");
  await publishMixed(10);
  await publishChecks(5);
  await checker.same(reference, clients.filter((one) => one !== reference).map((one, index) => ({ name: `joined-${index}`, reader: one })));
  assert.deepEqual(await reference.read(mixed.root), mixed.read(mixed.root), "the reference equals an ordered replay");
  assert.deepEqual(await fresh.read(mixed.root), mixed.read(mixed.root));
  t.diagnostic(`topic emptied at offset ${high}: the new client identical ${Date.now() - started} ms after its distributor was started`);
});

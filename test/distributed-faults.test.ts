/**
 * The distributed deployment under faults, every part a real process: Kafka, 2
 * broadcasters, 2 policy-watchers, 3 distributors, 2 trigger-apis and 10 clients with
 * real OPA. 5,000 updates go in through both trigger-apis and straight into Kafka while a
 * distributor and a broadcaster are killed, the broker is stopped for 10 s, and the
 * policy publisher is killed; the checker then finds every client's OPA equal to an
 * ordered replay: nothing lost, nothing repeated, nothing out of order.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { fromJson } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { Kafka, logLevel, type Producer } from "kafkajs";
import { request } from "undici";
import { PublishDataUpdateRequestSchema, TriggerService } from "../gen/opal/mesh/v1/trigger_pb.js";
import { DeliveryChecker, type OpaReader } from "./helpers/checker.js";
import { GitRepo, tempDir } from "./helpers/git-repo.js";
import { type RunningKafka, startTestKafka } from "./helpers/kafka.js";
import { opaBinary } from "./helpers/opa.js";
import { freePort } from "./helpers/ports.js";
import { MeshProcess } from "./helpers/processes.js";
import { waitFor } from "./helpers/wait.js";

const TOPIC = "opal-mesh-distributed";
const CLIENTS = 10;
let kafka: RunningKafka;
let checker: DeliveryChecker;
let repo: GitRepo;
let producer: Producer;
const broadcasters: MeshProcess[] = [];
const watchers: MeshProcess[] = [];
const distributors: MeshProcess[] = [];
const triggers: MeshProcess[] = [];
const clients: Array<{ process: MeshProcess; reader: OpaReader; opaUrl: string }> = [];

const RBAC = (admin: string): string => `package app.rbac\n\ndefault allow := false\n\nallow if input.user == "${admin}"\n`;

async function service(command: string, env: Record<string, string>): Promise<MeshProcess> {
  const port = await freePort();
  const common = { OPAL_SERVER_HOST: "127.0.0.1", OPAL_SERVER_BIND_PORT: String(port), OPAL_BROADCAST_URI: `kafka://${kafka.bootstrap}`, OPAL_BROADCAST_CHANNEL_NAME: TOPIC, OPAL_MESH_KAFKA_REPLICATION_FACTOR: "1" };
  const process = new MeshProcess(command, { ...common, ...env }, `http://127.0.0.1:${port}/healthcheck`);
  return process;
}

function urlOf(process: MeshProcess): string {
  return `http://127.0.0.1:${process.env.OPAL_SERVER_BIND_PORT}`;
}

before(async () => {
  kafka = await startTestKafka();
  checker = await new DeliveryChecker().start();
  repo = new GitRepo();
  repo.commit({ "rbac/policy.rego": RBAC("alice") }, "initial");

  for (let index = 0; index < 2; index++) broadcasters.push(await service("broadcaster", {}));
  await Promise.all(broadcasters.map((process) => process.ready()));
  const broadcasterUrls = broadcasters.map(urlOf).join(",");
  for (let index = 0; index < 2; index++) {
    watchers.push(
      await service("policy-watcher", {
        OPAL_MESH_BROADCASTER_URLS: broadcasterUrls,
        OPAL_POLICY_REPO_URL: repo.dir,
        OPAL_POLICY_REPO_MAIN_BRANCH: "main",
        OPAL_POLICY_REPO_POLLING_INTERVAL: "0.5",
        OPAL_POLICY_REPO_CLONE_PATH: tempDir("opal-mesh-clones-"),
      }),
    );
  }
  for (let index = 0; index < 3; index++) {
    distributors.push(
      await service("distributor", {
        OPAL_MESH_BROADCASTER_URLS: broadcasterUrls,
        OPAL_MESH_POLICY_WATCHER_URLS: watchers.map(urlOf).join(","),
        OPAL_MESH_STREAM_PORT: String(await freePort()),
        OPAL_DATA_CONFIG_SOURCES: JSON.stringify({ config: { entries: checker.baselineEntries() } }),
      }),
    );
  }
  for (let index = 0; index < 2; index++) triggers.push(await service("trigger-api", { OPAL_MESH_BROADCASTER_URLS: broadcasterUrls }));
  await Promise.all([...watchers, ...distributors, ...triggers].map((process) => process.ready()));

  const distributorUrls = distributors.map(urlOf);
  const opa = await opaBinary();
  for (let index = 0; index < CLIENTS; index++) {
    const [apiPort, opaPort] = [await freePort(), await freePort()];
    // Spread the clients: each lists the distributors starting with a different one.
    const order = [...distributorUrls.slice(index % 3), ...distributorUrls.slice(0, index % 3)];
    const process = new MeshProcess(
      "client",
      {
        OPAL_SERVER_URL: order.join(","),
        OPAL_CLIENT_STAT_ID: `client-${index}`,
        OPAL_CLIENT_API_SERVER_PORT: String(apiPort),
        OPAL_INLINE_OPA_EXEC_PATH: opa,
        OPAL_INLINE_OPA_CONFIG: JSON.stringify({ addr: `127.0.0.1:${opaPort}` }),
      },
      `http://127.0.0.1:${apiPort}/ready`,
    );
    const opaUrl = `http://127.0.0.1:${opaPort}`;
    clients.push({
      process,
      opaUrl,
      reader: {
        async read(path: string) {
          const response = await request(`${opaUrl}/v1/data${path}`);
          return ((await response.body.json()) as { result?: unknown }).result;
        },
      },
    });
  }
  await Promise.all(clients.map((client) => client.process.ready(120_000)));
  producer = new Kafka({ brokers: [kafka.bootstrap], logLevel: logLevel.NOTHING }).producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
});

after(async () => {
  await producer?.disconnect().catch(() => undefined);
  await Promise.all([...clients.map((client) => client.process), ...triggers, ...distributors, ...watchers, ...broadcasters].map((process) => process.kill("SIGKILL")));
  await checker?.source.stop();
  await kafka?.destroy();
  repo?.remove();
});

const triggerClients = () => triggers.map((process) => createClient(TriggerService, createConnectTransport({ baseUrl: urlOf(process), httpVersion: "1.1" })));

/** Through trigger-api 1, trigger-api 2 and Kafka in turn; retried until accepted (the same id). */
async function publish(count: number): Promise<void> {
  const [first, second] = triggerClients();
  await checker.publishWith(async (json, index) => {
    for (let attempt = 1; ; attempt++) {
      try {
        const path = index % 3;
        if (path === 2) {
          const [result] = await producer.send({ topic: TOPIC, acks: -1, messages: [{ value: JSON.stringify(json) }] });
          return BigInt(result?.baseOffset ?? "0") + 1n;
        }
        const trigger = path === 0 ? first : second;
        return (await trigger!.publishDataUpdate(fromJson(PublishDataUpdateRequestSchema, json as never))).position;
      } catch (error) {
        if (attempt > 200) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }, count);
}

async function allConverged(): Promise<number> {
  const started = Date.now();
  for (const client of clients) await checker.verify(client.reader, { log: true }, 120_000);
  return Date.now() - started;
}

test("5,000 updates under faults: every client equals an ordered replay", { timeout: 900_000 }, async (t) => {
  await publish(1000);
  t.diagnostic(`steady: converged ${await allConverged()} ms after the last publish`);

  // A distributor dies mid-stream: its clients move to the others and resume.
  await publish(300);
  await distributors[0]!.kill("SIGKILL");
  await publish(700);
  t.diagnostic(`distributor killed: converged ${await allConverged()} ms after the last publish`);

  // A broadcaster dies: distributors and trigger-apis fail over to the other.
  await publish(300);
  await broadcasters[0]!.kill("SIGKILL");
  await publish(700);
  t.diagnostic(`broadcaster killed: converged ${await allConverged()} ms after the last publish`);

  // The broker is away for 10 s; publishers retry.
  await publish(300);
  await kafka.stop();
  const outage = Date.now();
  await new Promise((resolve) => setTimeout(resolve, 10_000));
  await kafka.restart();
  await publish(700);
  t.diagnostic(`Kafka stopped for ${Date.now() - outage} ms: converged ${await allConverged()} ms after the last publish`);

  // The policy publisher dies; the other watcher is elected and publishes the next commit.
  const leader = await waitFor(async () => {
    for (const watcher of watchers) {
      const body = (await (await request(`${urlOf(watcher)}/healthcheck`)).body.json()) as { components: Array<{ message: string }> };
      if (body.components.some((component) => component.message.includes("elected publisher"))) return watcher;
    }
    return undefined;
  }, { timeoutMs: 30_000, message: "an elected policy publisher" });
  await leader.kill("SIGKILL");
  const sha = repo.commit({ "rbac/policy.rego": RBAC("bob") }, "bob is the admin now");
  const policyStarted = Date.now();
  await publish(1000);
  for (const client of clients) {
    await waitFor(async () => {
      const response = await request(`${client.opaUrl}/v1/data/app/rbac/allow`, { method: "POST", body: JSON.stringify({ input: { user: "bob" } }) });
      return ((await response.body.json()) as { result?: boolean }).result === true;
    }, { timeoutMs: 60_000, message: `client ${client.opaUrl} to apply commit ${sha}` });
  }
  t.diagnostic(`policy publisher killed: every client had the next commit ${Date.now() - policyStarted} ms after it`);
  t.diagnostic(`final: converged ${await allConverged()} ms`);
  assert.equal(checker.count, 5000);
});

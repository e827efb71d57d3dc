/**
 * The distributed deployment under faults, every part a real process: Kafka, 2
 * broadcasters, 2 policy-watchers, 3 distributors, 2 trigger-apis and 10 clients with
 * real OPA. 5,000 updates go in through both trigger-apis and straight into Kafka while a
 * distributor and a broadcaster are killed, the broker is stopped for 10 s, and the
 * policy publisher is killed; the checker then finds every client's OPA equal to an
 * ordered replay (nothing lost, nothing repeated, nothing out of order) and every
 * client's whole managed data identical to the first client's.
 */
import { after, before, test, type TestContext } from "node:test";
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
        // The test broker allows it (deploy/kafka lowers group.min.session.timeout.ms).
        OPAL_MESH_LEADER_SESSION_TIMEOUT_MS: "2000",
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
}, { timeout: 240_000 });

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
  for (const client of clients) await checker.verify(client.reader, 120_000);
  const [first, ...rest] = clients;
  await checker.same(first!.reader, rest.map((client) => ({ name: client.process.env.OPAL_CLIENT_STAT_ID ?? client.opaUrl, reader: client.reader })), 120_000);
  return Date.now() - started;
}

/** Whether a client's OPA gives bob the admin decision (the commit of the fail-over phase). */
async function hasBobCommit(opaUrl: string): Promise<boolean> {
  const response = await request(`${opaUrl}/v1/data/app/rbac/allow`, { method: "POST", body: JSON.stringify({ input: { user: "bob" } }) });
  return ((await response.body.json()) as { result?: boolean }).result === true;
}

async function electedPublisher(candidates: MeshProcess[]): Promise<MeshProcess | undefined> {
  for (const watcher of candidates) {
    const body = (await (await request(`${urlOf(watcher)}/healthcheck`)).body.json()) as { components: Array<{ message: string }> };
    if (body.components.some((component) => component.message.includes("elected publisher"))) return watcher;
  }
  return undefined;
}

/**
 * One phase of the run, with its own deadline: it reports how long it took, and a slow or
 * failing phase fails the test with its name (not at the whole test's limit).
 */
async function phase(t: TestContext, name: string, budgetMs: number, run: () => Promise<string>): Promise<void> {
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`phase "${name}" did not finish within ${budgetMs} ms`)), budgetMs);
  });
  try {
    const detail = await Promise.race([run(), deadline]);
    t.diagnostic(`${name}: ${Date.now() - started} ms in all; ${detail}`);
  } catch (error) {
    throw new Error(`phase "${name}" failed after ${Date.now() - started} ms: ${(error as Error).message}`, { cause: error });
  } finally {
    clearTimeout(timer);
  }
}

test("5,000 updates under faults: every client equals an ordered replay", { timeout: 900_000 }, async (t) => {
  await phase(t, "steady", 120_000, async () => {
    await publish(1000);
    return `converged ${await allConverged()} ms after the last publish`;
  });

  // A distributor dies mid-stream: its clients move to the others and resume.
  await phase(t, "distributor killed", 150_000, async () => {
    await publish(300);
    await distributors[0]!.kill("SIGKILL");
    await publish(700);
    return `converged ${await allConverged()} ms after the last publish`;
  });

  // A broadcaster dies: distributors and trigger-apis fail over to the other.
  await phase(t, "broadcaster killed", 150_000, async () => {
    await publish(300);
    await broadcasters[0]!.kill("SIGKILL");
    await publish(700);
    return `converged ${await allConverged()} ms after the last publish`;
  });

  // The broker is away for 10 s; publishers retry.
  await phase(t, "Kafka stopped", 180_000, async () => {
    await publish(300);
    await kafka.stop();
    const outage = Date.now();
    await new Promise((resolve) => setTimeout(resolve, 10_000));
    await kafka.restart();
    const back = Date.now();
    await publish(700);
    const converged = await allConverged();
    // The watchers' election group comes back too (their consumers reconnect with backoff).
    await waitFor(() => electedPublisher(watchers), { timeoutMs: 60_000, message: "a policy publisher elected again after the broker came back" });
    return `broker away ${back - outage} ms; converged ${converged} ms after the last publish; a publisher elected again ${Date.now() - back} ms after the broker was back`;
  });

  // The policy publisher dies; the other watcher is elected (after its 2 s session timeout)
  // and publishes the next commit, while data updates go on flowing.
  await phase(t, "policy publisher killed", 150_000, async () => {
    const leader = await waitFor(() => electedPublisher(watchers), { timeoutMs: 30_000, message: "an elected policy publisher" });
    await leader.kill("SIGKILL");
    const killed = Date.now();
    const sha = repo.commit({ "rbac/policy.rego": RBAC("bob") }, "bob is the admin now");
    const publishing = publish(1000);
    const survivors = watchers.filter((watcher) => watcher !== leader);
    await waitFor(() => electedPublisher(survivors), { timeoutMs: 30_000, message: "the surviving watcher to be elected" });
    const elected = Date.now() - killed;
    await Promise.all(clients.map((client) => waitFor(() => hasBobCommit(client.opaUrl), { timeoutMs: 60_000, message: `client ${client.opaUrl} to apply commit ${sha}` })));
    const applied = Date.now() - killed;
    await publishing;
    return `new publisher elected ${elected} ms after the kill; every client had the next commit ${applied} ms after it`;
  });

  await phase(t, "final", 150_000, async () => `converged ${await allConverged()} ms`);
  assert.equal(checker.count, 5000);
});

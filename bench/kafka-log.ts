/**
 * The Kafka log alone, against a real Kafka 4 broker on loopback: what the broadcaster's
 * Kafka path costs per event, without HTTP, the distributor or clients in the way.
 * `--concurrency` publishers each append one event and wait for its position, through the
 * trigger-api's EventBatcher (so batches form as they do in the server: one Publish in
 * flight, the events published meanwhile in the next); a subscriber reads the log from
 * the head, as the distributor does. Per run: events/s appended, publish → position
 * (the append) and publish → read by the subscriber (what a client's latency starts
 * with), events per produce request, Kafka requests per event by API, and the CPU per event
 * of this process and of the broker. Every event read must be the next position, and the
 * subscriber must reach the last one: nothing lost or reordered.
 *
 *   node --import tsx bench/kafka-log.ts [-- --runs 3 --seconds 8 --concurrency 128]
 *     [--broker <server.properties name>=<value> ...] [--jvm <JVM option> ...]
 *     [--fetch-max-wait-ms 100 --fetch-min-bytes 1]
 *
 * Single runs are noisy on a shared 2-core machine: compare medians of several runs.
 */
import { createRequire } from "node:module";
import { create } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import type { BroadcasterService } from "../gen/opal/mesh/v1/broadcaster_pb.js";
import { type Event, EventSchema } from "../gen/opal/mesh/v1/event_pb.js";
import { startKafka } from "../deploy/kafka/kafka.js";
import { KafkaLog, type KafkaLogOptions } from "../services/broadcaster/kafka-log.js";
import { parseDataUpdate } from "../services/common/data-entries.js";
import { silentLogger } from "../services/common/logger.js";
import { EventBatcher } from "../services/trigger-api/event-batcher.js";
import { freePort, summary } from "./lib.js";
import { procStats } from "./proc-stats.js";

function option(name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`);
  return index === -1 ? fallback : (process.argv[index + 1] ?? fallback);
}
const runs = Number(option("runs", "3"));
const seconds = Number(option("seconds", "8"));
const concurrency = Number(option("concurrency", "128"));
/** Every value of a repeatable option: `--broker num.io.threads=2 --broker …`, `--jvm -XX:…`. */
function repeated(name: string): string[] {
  return process.argv.flatMap((arg, index) => (arg === `--${name}` && process.argv[index + 1] !== undefined ? [process.argv[index + 1] as string] : []));
}
const brokerProperties = Object.fromEntries(repeated("broker").map((pair) => [pair.slice(0, pair.indexOf("=")), pair.slice(pair.indexOf("=") + 1)]));
const jvmOptions = repeated("jvm");
/** The tail's fetch, as OPAL_MESH_KAFKA_FETCH_MAX_WAIT_MS and OPAL_MESH_KAFKA_FETCH_MIN_BYTES set it. */
const fetch = { maxWaitMs: Number(option("fetch-max-wait-ms", "100")), minBytes: Number(option("fetch-min-bytes", "1")) };

/** Kafka requests sent by every kafkajs connection of this process, by API. */
const requests = new Map<string, number>();
const require = createRequire(import.meta.url);
type Send = (this: unknown, options: { request: { apiName: string } }) => Promise<unknown>;
const Connection = require("kafkajs/src/network/connection.js") as { prototype: { send: Send } };
const send = Connection.prototype.send;
Connection.prototype.send = function counted(options) {
  requests.set(options.request.apiName, (requests.get(options.request.apiName) ?? 0) + 1);
  return send.call(this, options);
};

function event(value: number): Event {
  // The id carries the publish time, so the subscriber can tell publish → read per event.
  const update = parseDataUpdate({ id: `t${performance.now()}`, entries: [{ dst_path: "/bench/kafka", topics: ["policy_data"], data: { value } }], reason: "bench" });
  return create(EventSchema, { topics: ["policy_data"], payload: { case: "dataUpdate", value: update } });
}

interface RunResult {
  eventsPerSecond: number;
  appendMs: ReturnType<typeof summary>;
  readMs: ReturnType<typeof summary>;
  eventsPerProduce: number;
  requestsPerEvent: Record<string, number>;
  cpuUsPerEvent: number;
  brokerCpuUsPerEvent: number | undefined;
}

async function run(index: number, bootstrap: string, brokerPid: number | undefined): Promise<RunResult> {
  const topic = `bench-kafka-log-${index}-${Date.now()}`;
  const options: KafkaLogOptions = {
    client: { brokers: [bootstrap], clientId: "bench-kafka-log", retry: { initialRetryTime: 300, retries: 8, maxRetryTime: 5_000 } },
    topic,
    retentionMs: 3_600_000,
    replicationFactor: 1,
    window: { maxEvents: 100_000, maxBytes: 256 * 1024 * 1024 },
    fetch,
    snapshot: { topic: `${topic}-snapshot`, checkpointIntervalMs: 5_000 },
    logger: silentLogger(),
  };
  const log = new KafkaLog(options);
  await log.start(new AbortController().signal);
  const batcher = new EventBatcher({ publish: async (request: { events: Event[] }) => ({ positions: await log.append(request.events) }) } as unknown as Client<typeof BroadcasterService>);
  const reading = new AbortController();
  const readMs: number[] = [];
  let lastRead = log.head().headPosition;
  let misordered = 0;
  const reader = (async () => {
    for await (const read of log.read(lastRead, reading.signal)) {
      if (read.position !== lastRead + 1n) misordered++;
      lastRead = read.position;
      if (read.payload.case === "dataUpdate") readMs.push(performance.now() - Number(read.payload.value.id.slice(1)));
    }
  })().catch((error: unknown) => {
    if (!reading.signal.aborted) throw error;
  });

  const appendMs: number[] = [];
  let value = 0;
  let running = true;
  let lastPosition = 0n;
  const publisher = async (): Promise<void> => {
    while (running) {
      const started = performance.now();
      const position = await batcher.append(event(++value));
      appendMs.push(performance.now() - started);
      if (position > lastPosition) lastPosition = position;
    }
  };
  // Warm-up, then the measured window.
  const publishers = Array.from({ length: concurrency }, () => publisher());
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  appendMs.length = 0;
  readMs.length = 0;
  requests.clear();
  const cpuBefore = process.cpuUsage();
  const brokerBefore = brokerPid === undefined ? undefined : procStats(brokerPid).cpuMs;
  const firstPosition = lastPosition;
  const startedAt = performance.now();
  await new Promise((resolve) => setTimeout(resolve, seconds * 1_000));
  const events = Number(lastPosition - firstPosition);
  const elapsed = (performance.now() - startedAt) / 1_000;
  const cpu = process.cpuUsage(cpuBefore);
  const brokerCpuMs = brokerPid === undefined || brokerBefore === undefined ? undefined : procStats(brokerPid).cpuMs - brokerBefore;
  const counted = Object.fromEntries([...requests].map(([api, count]) => [api, Math.round((count / events) * 1_000) / 1_000]));
  running = false;
  await Promise.all(publishers);
  const deadline = Date.now() + 30_000;
  while (lastRead < lastPosition && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
  reading.abort();
  await reader;
  await log.stop();
  if (lastRead < lastPosition) throw new Error(`the subscriber read up to ${lastRead}; ${lastPosition} were appended`);
  if (misordered > 0) throw new Error(`${misordered} events were read out of order`);
  return {
    eventsPerSecond: Math.round(events / elapsed),
    appendMs: summary(appendMs),
    readMs: summary(readMs),
    eventsPerProduce: Math.round((events / (requests.get("Produce") ?? 1)) * 10) / 10,
    requestsPerEvent: counted,
    cpuUsPerEvent: Math.round(((cpu.user + cpu.system) / events) * 10) / 10,
    brokerCpuUsPerEvent: brokerCpuMs === undefined ? undefined : Math.round(((brokerCpuMs * 1_000) / events) * 10) / 10,
  };
}

const kafka = await startKafka({ port: await freePort(), brokerProperties, jvmOptions });
try {
  // An older deploy/kafka (a worktree of an earlier commit) has no pid(): no broker CPU then.
  const pid = (kafka as { pid?: () => number | undefined }).pid?.();
  const results: RunResult[] = [];
  for (let index = 0; index < runs; index++) {
    const result = await run(index, kafka.bootstrap, pid);
    process.stderr.write(`[kafka-log] run ${index + 1}: ${JSON.stringify(result)}\n`);
    results.push(result);
  }
  const median = (pick: (result: RunResult) => number): number => summary(results.map(pick)).median;
  console.log(
    JSON.stringify(
      {
        concurrency,
        seconds,
        brokerProperties,
        jvmOptions,
        fetch,
        runs,
        eventsPerSecond: median((result) => result.eventsPerSecond),
        appendP50Ms: median((result) => result.appendMs.median),
        appendP99Ms: median((result) => result.appendMs.p99),
        readP50Ms: median((result) => result.readMs.median),
        readP99Ms: median((result) => result.readMs.p99),
        eventsPerProduce: median((result) => result.eventsPerProduce),
        cpuUsPerEvent: median((result) => result.cpuUsPerEvent),
        brokerCpuUsPerEvent: pid === undefined ? undefined : median((result) => result.brokerCpuUsPerEvent ?? 0),
        requestsPerEvent: results.at(-1)?.requestsPerEvent,
      },
      null,
      2,
    ),
  );
} finally {
  await kafka.destroy();
}

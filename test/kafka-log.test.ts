/**
 * The Kafka log's own appends on a real broker: a broadcaster holds the events it appended
 * as soon as Kafka answers, when they follow what its tail has read, and leaves them to the
 * tail after a gap. Either way every log on the topic holds one order, with nothing lost,
 * and an event held from its own append is exactly the one a peer decoded from the topic.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { create, toBinary } from "@bufbuild/protobuf";
import { Kafka, logLevel, type Producer } from "kafkajs";
import { type Event, EventSchema } from "../gen/opal/mesh/v1/event_pb.js";
import { SnapshotItemSchema } from "../gen/opal/mesh/v1/snapshot_pb.js";
import { encodeEvent } from "../services/broadcaster/kafka-codec.js";
import { KafkaLog } from "../services/broadcaster/kafka-log.js";
import { parseDataUpdate } from "../services/common/data-entries.js";
import { silentLogger } from "../services/common/logger.js";
import { type RunningKafka, startTestKafka } from "./helpers/kafka.js";

let kafka: RunningKafka;
let external: Producer;
const running = new Set<KafkaLog>();

before(async () => {
  kafka = await startTestKafka();
  external = new Kafka({ brokers: [kafka.bootstrap], logLevel: logLevel.NOTHING }).producer();
  await external.connect();
});

after(async () => {
  for (const log of running) await log.stop();
  await external?.disconnect();
  await kafka?.destroy();
});

async function startLog(topic: string): Promise<KafkaLog> {
  const log = new KafkaLog({
    client: { brokers: [kafka.bootstrap], clientId: "kafka-log-test" },
    topic,
    retentionMs: 3_600_000,
    replicationFactor: 1,
    window: { maxEvents: 10_000, maxBytes: 64 * 1024 * 1024 },
    snapshot: { topic: `${topic}-snapshot`, checkpointIntervalMs: 60_000 },
    logger: silentLogger(),
  });
  running.add(log);
  await log.start(new AbortController().signal);
  return log;
}

function update(id: string, value: number): Event {
  const data = parseDataUpdate({ id, entries: [{ dst_path: `/kafka-log/${id}`, topics: ["policy_data"], data: { value } }] });
  return create(EventSchema, { topics: ["policy_data"], payload: { case: "dataUpdate", value: data } });
}

/** The first `count` events after `after`, as a subscriber of the log reads them. */
async function readEvents(log: KafkaLog, after: bigint, count: number): Promise<Event[]> {
  const events: Event[] = [];
  const reading = new AbortController();
  const deadline = setTimeout(() => reading.abort(), 20_000);
  try {
    for await (const event of log.read(after, reading.signal)) {
      events.push(event);
      if (events.length === count) break;
    }
  } finally {
    clearTimeout(deadline);
  }
  assert.equal(events.length, count, `read ${events.length} of ${count} events in 20 s`);
  return events;
}

const itemsOf = (log: KafkaLog): string[] => log.snapshot.export().items.map((item) => Buffer.from(toBinary(SnapshotItemSchema, item)).toString("hex"));
const idOf = (event: Event): string => (event.payload.case === "dataUpdate" ? event.payload.value.id : "");
const bytesOf = (event: Event): string => Buffer.from(toBinary(EventSchema, event)).toString("hex");

test("two logs and an external producer on one topic: every log reads one order, nothing lost, own events as a peer decodes them", async () => {
  const topic = `kafka-log-own-${Date.now()}`;
  const [first, second] = [await startLog(topic), await startLog(topic)];
  const start = first.head().headPosition;
  // Interleaved writers: each log's batches land between the others' and the external producer's,
  // so each log meets gaps (messages its tail has not read yet) before some of its own appends.
  const appended: Array<Promise<bigint[]>> = [];
  const externalWrites: Array<Promise<unknown>> = [];
  for (let round = 0; round < 40; round++) {
    appended.push(first.append([update(`a${round}-0`, round), update(`a${round}-1`, round)]));
    appended.push(second.append([update(`b${round}`, round)]));
    if (round % 4 === 0) externalWrites.push(external.send({ topic, messages: [encodeEvent(update(`x${round}`, round))] }));
  }
  const positions = (await Promise.all(appended)).flat();
  await Promise.all(externalWrites);
  const total = 40 * 3 + 10;
  assert.equal(new Set(positions).size, positions.length, "each appended event has a position of its own");

  const [readFirst, readSecond] = await Promise.all([readEvents(first, start, total), readEvents(second, start, total)]);
  readFirst.forEach((event, index) => assert.equal(event.position, start + BigInt(index) + 1n, `the first log's event ${index} follows the one before`));
  assert.deepEqual(readFirst.map(bytesOf), readSecond.map(bytesOf), "both logs hold the same events, byte for byte, in one order");
  const ids = readFirst.map(idOf);
  for (let round = 0; round < 40; round++) {
    assert.ok(ids.indexOf(`a${round}-0`) + 1 === ids.indexOf(`a${round}-1`), `the first log's batch ${round} stays together and in order`);
    assert.ok(ids.includes(`b${round}`), `b${round} is in the log`);
  }
  for (const event of readFirst) assert.ok(event.publishedAtUnixMs > 0n, "every event says when it was published");
});

test("a log restarted on the topic reads back what it appended, identical to what it held", async () => {
  const topic = `kafka-log-restart-${Date.now()}`;
  const log = await startLog(topic);
  await log.append([update("r0", 0), update("r1", 1)]);
  const ownHeld = await readEvents(log, 0n, 2);
  const folded = itemsOf(log);
  await log.stop();
  running.delete(log);
  const restarted = await startLog(topic);
  assert.deepEqual((await readEvents(restarted, 0n, 2)).map(bytesOf), ownHeld.map(bytesOf));
  assert.deepEqual(itemsOf(restarted), folded, "the restarted log folded what the first one folded from its own appends");
  assert.equal(folded.length, 2);
});

/**
 * A fresh broker spends its first seconds compiling and sizing itself; a broker in service
 * has long been past that. Before a bench measures the Kafka path, a Kafka log on a scratch
 * topic appends and reads for a few seconds, so the run measures the path and not the
 * broker's start. The scratch topic is left behind in the bench's throwaway broker.
 */
import { create } from "@bufbuild/protobuf";
import { EventSchema } from "../../gen/opal/mesh/v1/event_pb.js";
import { KafkaLog } from "../../services/broadcaster/kafka-log.js";
import { parseDataUpdate } from "../../services/common/data-entries.js";
import { silentLogger } from "../../services/common/logger.js";

export async function warmUpKafka(bootstrap: string, durationMs = 3_000): Promise<void> {
  const topic = `bench-warmup-${Date.now()}`;
  const log = new KafkaLog({
    client: { brokers: [bootstrap], clientId: "bench-warmup" },
    topic,
    retentionMs: 3_600_000,
    replicationFactor: 1,
    window: { maxEvents: 1_000, maxBytes: 16 * 1024 * 1024 },
    snapshot: { topic: `${topic}-snapshot`, checkpointIntervalMs: 1_000 },
    logger: silentLogger(),
  });
  await log.start(new AbortController().signal);
  try {
    const until = performance.now() + durationMs;
    for (let round = 0; performance.now() < until; round++) {
      // Batches of the sizes a loaded trigger sends, at one document as the benches write.
      const events = Array.from({ length: 1 + (round % 32) }, (_, index) =>
        create(EventSchema, { topics: ["policy_data"], payload: { case: "dataUpdate", value: parseDataUpdate({ entries: [{ dst_path: "/bench/warmup", topics: ["policy_data"], data: { round, index } }] }) } }),
      );
      await log.append(events);
    }
  } finally {
    await log.stop();
  }
}

/** A real Kafka broker for a test file (deploy/kafka), on a free port. */
// Tests that make their own kafkajs clients get the clamp of its negative timer too (kafkajs #1751).
import "../../services/common/kafka/request-queue-timer.js";
import { type RunningKafka, startKafka } from "../../deploy/kafka/kafka.js";
import { freePort } from "./ports.js";

export type { RunningKafka };

export async function startTestKafka(sasl?: { username: string; password: string }): Promise<RunningKafka> {
  try {
    return await startKafka({ port: await freePort(), sasl, onLog: process.env.TEST_LOG_LEVEL === undefined ? undefined : (line) => process.stderr.write(`${line}\n`) });
  } catch (error) {
    throw new Error(`cannot start the Kafka broker for this test (npm test resolves it with Maven; \`npm run kafka -- --port 9092\` tries alone): ${(error as Error).message}`, { cause: error });
  }
}

// Resolves the Kafka broker jars from Maven Central into the cache (once), for the tests.
import { ensureKafkaJars, KAFKA_VERSION } from "../deploy/kafka/kafka.js";

try {
  const libs = await ensureKafkaJars();
  process.stdout.write(`Kafka ${KAFKA_VERSION} broker jars: ${libs}\n`);
} catch (error) {
  process.stderr.write(`${(error as Error).message}\n`);
  process.exit(1);
}

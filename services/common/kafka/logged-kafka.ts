/** A kafkajs client whose warnings and errors go to our logger (kafkajs logs to stdout otherwise), Nagle off. */
import { Kafka, type KafkaConfig, logLevel as kafkaLogLevel } from "kafkajs";
import type { Logger } from "../logger.js";
import "./request-queue-timer.js";
import { noDelaySocketFactory } from "./socket-factory.js";

export function loggedKafka(client: Omit<KafkaConfig, "logLevel" | "logCreator">, logger: Logger): Kafka {
  return new Kafka({
    socketFactory: noDelaySocketFactory,
    ...client,
    logLevel: kafkaLogLevel.WARN,
    logCreator: () => (entry) => {
      const { message, ...extra } = entry.log;
      if (entry.level <= kafkaLogLevel.ERROR) logger.error({ kafka: extra }, message);
      else logger.warn({ kafka: extra }, message);
    },
  });
}

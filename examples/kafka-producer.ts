/**
 * Publishing straight into opal-mesh's Kafka topic, as another system would: once as
 * OPAL's DataUpdate JSON, once as a protobuf opal.mesh.v1.Event. Both reach every client
 * like a triggered update.
 *
 *   node --import tsx examples/kafka-producer.ts localhost:9092 [topic]
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { Kafka } from "kafkajs";
import { EventSchema } from "../gen/opal/mesh/v1/event_pb.js";

const [broker = "localhost:9092", topic = "opal-mesh-events"] = process.argv.slice(2);
const producer = new Kafka({ clientId: "example-producer", brokers: [broker] }).producer({ idempotent: true });
await producer.connect();

// 1. OPAL's DataUpdate JSON, unchanged (the content type may be omitted: JSON is detected).
const json = {
  entries: [{ url: "", data: { roles: ["editor"] }, dst_path: "/users/bob", topics: ["policy_data"] }],
  reason: "promoted by the HR system",
};
await producer.send({ topic, messages: [{ value: JSON.stringify(json), headers: { "content-type": "application/json" } }] });

// 2. The protobuf event the broadcaster itself writes (data as JSON bytes). Position and
//    time come from Kafka (offset + 1, message timestamp), so leave them unset.
const event = create(EventSchema, {
  topics: ["policy_data"],
  payload: {
    case: "dataUpdate",
    value: { id: "hr-sync-42", reason: "from protobuf", entries: [{ dstPath: "/users/carol", topics: ["policy_data"], dataJson: Buffer.from(JSON.stringify({ roles: ["viewer"] })) }] },
  },
});
await producer.send({ topic, messages: [{ value: Buffer.from(toBinary(EventSchema, event)), headers: { "content-type": "application/x-protobuf; messageType=opal.mesh.v1.Event" } }] });

await producer.disconnect();
console.log(`published two updates to ${topic} on ${broker}`);

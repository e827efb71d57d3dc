/**
 * ACK-only load clients (not the real agent: no policy store), to separate the mesh's
 * cost from OPA's: N raw grpc-js streams to the distributor that say Hello and ACK every
 * event as applied, in order, the moment it arrives. Like the real client, they take
 * EventBatch messages and ACK a batch with one cumulative Ack (--batches no: one event
 * per message, one Ack each, as clients before batching did).
 *
 *   --server <url> --clients <n> --prefix <client id prefix> [--batches yes|no]
 *
 * Sends "ready" once every stream was welcomed; answers "positions" (the newest
 * position each ACKed), "applied" (events each ACKed) and "stop".
 */
import * as grpc from "@grpc/grpc-js";
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { AckStatus, type ConnectRequest, ConnectRequestSchema, type ConnectResponse, DistributorService } from "../../gen/opal/mesh/v1/distributor_pb.js";
import { grpcServiceDefinition } from "../../services/common/grpc/service-definition.js";
import { argument, serve } from "./host-ipc.js";

const serverUrl = argument("server");
const count = Number(argument("clients"));
const prefix = argument("prefix", "ack-only");
const batches = argument("batches", "yes") === "yes";

type Stream = grpc.ClientDuplexStream<ConnectRequest, ConnectResponse>;

interface AckClient {
  stream: Stream;
  position: bigint;
  acked: number;
}

// Where the distributor's stream listener is, as the real client discovers it.
const discovered = await createClient(DistributorService, createConnectTransport({ baseUrl: serverUrl, httpVersion: "1.1" })).discoverStream({});
const target = `${new URL(serverUrl).hostname}:${discovered.port}`;
const Client = grpc.makeGenericClientConstructor(grpcServiceDefinition(DistributorService), "DistributorService");

function open(index: number): Promise<AckClient> {
  // One connection per client, as real clients have (grpc-js would share one otherwise).
  const client = new Client(target, grpc.credentials.createInsecure(), { "grpc.max_receive_message_length": 64 * 1024 * 1024, "grpc.use_local_subchannel_pool": 1 });
  const stream = (client as unknown as { connect(metadata: grpc.Metadata): Stream }).connect(new grpc.Metadata());
  const state: AckClient = { stream, position: 0n, acked: 0 };
  return new Promise((resolve, reject) => {
    stream.on("error", (error: Error) => reject(error));
    stream.on("data", (response: ConnectResponse) => {
      const message = response.message;
      if (message.case === "welcome") {
        state.position = message.value.headPosition;
        resolve(state);
      } else if (message.case === "event") {
        const event = message.value;
        const updateId = event.payload.case === "dataUpdate" ? event.payload.value.id : "";
        state.position = event.position;
        state.acked++;
        stream.write(create(ConnectRequestSchema, { message: { case: "ack", value: { position: event.position, updateId, status: AckStatus.APPLIED } } }));
      } else if (message.case === "events") {
        const events = message.value.events;
        const last = events.at(-1);
        if (last === undefined) return;
        state.position = last.position;
        state.acked += events.length;
        stream.write(create(ConnectRequestSchema, { message: { case: "ack", value: { position: last.position, status: AckStatus.APPLIED, cumulative: true } } }));
      }
    });
    stream.write(create(ConnectRequestSchema, { message: { case: "hello", value: { clientId: `${prefix}-${index}`, topics: ["policy_data"], scope: "default", acceptsBatches: batches } } }));
  });
}

const clients: AckClient[] = [];
try {
  clients.push(...(await Promise.all(Array.from({ length: count }, (_, index) => open(index)))));
  process.send?.({ type: "ready" });
} catch (error) {
  process.send?.({ type: "failed", error: (error as Error).message });
  process.exit(1);
}

serve(async (request) => {
  switch (request.type) {
    case "positions":
      return { positions: clients.map((client) => client.position.toString()) };
    case "applied":
      return { applied: clients.map((client) => client.acked) };
    case "stop":
      for (const client of clients) client.stream.cancel();
      return {};
    default:
      throw new Error(`unknown request ${request.type}`);
  }
});
process.on("disconnect", () => process.exit(0));

/**
 * A raw gRPC stream to the distributor, for the security cases on streams: it says Hello
 * and then reads and ACKs every event (a well-behaved client without an OPA), or stops
 * reading after Welcome (a client whose process froze), and reports how it ended.
 */
import { create } from "@bufbuild/protobuf";
import type * as grpc from "@grpc/grpc-js";
import { ConnectRequestSchema, type ConnectResponse, type Hello, type Welcome } from "../../gen/opal/mesh/v1/distributor_pb.js";
import type { Event } from "../../gen/opal/mesh/v1/event_pb.js";
import { AckStatus } from "../../gen/opal/mesh/v1/distributor_pb.js";
import { status as grpcStatus } from "@grpc/grpc-js";
import { streamClient } from "./attacks.js";

export interface StreamEnd {
  /** The gRPC status name ("ABORTED", "RESOURCE_EXHAUSTED", …), or "ENDED" for a clean end. */
  code: string;
  details: string;
}

export interface RawStreamOptions {
  token?: string;
  /** "ack": read every event and ACK it applied; "stall": stop reading after Welcome. */
  mode: "ack" | "stall";
  onEvent?: (event: Event) => void;
  /** grpc-js channel options (e.g. a larger HTTP/2 flow-control window for a reader of large updates). */
  channelOptions?: grpc.ChannelOptions;
}

export class RawStream {
  readonly welcome: Promise<Welcome>;
  readonly ended: Promise<StreamEnd>;
  private readonly client: ReturnType<typeof streamClient>;
  private readonly stream: ReturnType<ReturnType<typeof streamClient>["open"]>;
  private hasEnded = false;

  constructor(target: string, hello: Partial<Omit<Hello, "$typeName" | "$unknown">>, private readonly options: RawStreamOptions) {
    this.client = streamClient(target, options.channelOptions);
    this.stream = this.client.open(options.token);
    const stream = this.stream;
    this.welcome = new Promise((resolve, reject) => {
      stream.on("data", (response: ConnectResponse) => {
        if (response.message.case === "welcome") {
          resolve(response.message.value);
          if (options.mode === "stall") stream.pause();
        } else if (response.message.case === "event") {
          const event = response.message.value;
          options.onEvent?.(event);
          stream.write(create(ConnectRequestSchema, { message: { case: "ack", value: { position: event.position, status: AckStatus.APPLIED, updateId: event.payload.case === "dataUpdate" ? event.payload.value.id : "" } } }));
        }
      });
      stream.once("error", (error: Error) => reject(error));
    });
    this.welcome.catch(() => undefined);
    this.ended = new Promise((resolve) => {
      stream.on("error", (error: grpc.ServiceError) => {
        this.hasEnded = true;
        resolve({ code: grpcStatus[error.code] ?? String(error.code), details: error.details });
      });
      stream.on("end", () => {
        this.hasEnded = true;
        resolve({ code: "ENDED", details: "" });
      });
    });
    stream.write(create(ConnectRequestSchema, { message: { case: "hello", value: { topics: ["policy_data"], scope: "default", ...hello } } }));
  }

  get isEnded(): boolean {
    return this.hasEnded;
  }

  /** Reads again (a stalled client that woke up): what the server still sends arrives, then the end. */
  resume(): void {
    this.stream.resume();
  }

  /** The client goes away: cancels its stream and closes the channel. */
  close(): void {
    this.stream.on("error", () => undefined);
    this.stream.cancel();
    this.client.close();
  }
}

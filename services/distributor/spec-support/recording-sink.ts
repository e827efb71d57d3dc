/** For the distributor's specs only: a session's sink that decodes what it is sent and flushes at once. */
import { fromBinary } from "@bufbuild/protobuf";
import { type ConnectResponse, ConnectResponseSchema } from "../../../gen/opal/mesh/v1/distributor_pb.js";
import { ClientSession, type FrameSink } from "../session.js";

export class RecordingSink implements FrameSink {
  readonly frames: Uint8Array[] = [];
  readonly failures: Array<{ code: string; message: string }> = [];

  write(frame: Uint8Array): boolean {
    this.frames.push(frame);
    return true;
  }

  buffered(): number {
    return 0;
  }

  bufferedBytes(): number {
    return 0;
  }

  whenBelow(): Promise<void> {
    return Promise.resolve();
  }

  fail(code: string, message: string): void {
    this.failures.push({ code, message });
  }

  get messages(): ConnectResponse[] {
    return this.frames.map((frame) => fromBinary(ConnectResponseSchema, frame));
  }

  /** What was sent, as `event:<position>`, `resync:<head>`, `welcome:<head>`… */
  get summary(): string[] {
    return this.messages.map((message) => {
      switch (message.message.case) {
        case "event":
          return `event:${message.message.value.position}`;
        case "resync":
          return `resync:${message.message.value.headPosition}`;
        case "welcome":
          return `welcome:${message.message.value.headPosition}`;
        default:
          return String(message.message.case);
      }
    });
  }
}

export function recordedSession(clientId: string, topics: string[] = ["policy_data"], limits = { maxFrames: 1000, maxBytes: 64 * 1024 * 1024 }, scope?: string): { session: ClientSession; sink: RecordingSink } {
  const sink = new RecordingSink();
  return { session: new ClientSession(clientId, topics, `peer-${clientId}`, sink, limits, scope), sink };
}

/**
 * The load generator's hot path on the wire, by hand: with 10,000 clients in one process,
 * protobuf-es decoding each event and encoding each ACK cost more CPU than the
 * distributor spent sending them, and the receive times measured the load generator.
 * Only an event's position and update id are read; everything else goes through the
 * generated code (distributor.proto, event.proto, data.proto give the field numbers).
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { ConnectRequestSchema, type ConnectResponse, ConnectResponseSchema, type Hello } from "../../gen/opal/mesh/v1/distributor_pb.js";

export type Incoming = { kind: "event"; position: number; updateId: string } | { kind: "other"; message: ConnectResponse };

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LENGTH = 2;
const WIRE_FIXED32 = 5;

class Reader {
  offset = 0;
  constructor(readonly bytes: Uint8Array) {}

  varint(): number {
    let value = 0;
    let scale = 1;
    for (;;) {
      const byte = this.bytes[this.offset++];
      if (byte === undefined) throw new Error("truncated varint");
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) return value;
      scale *= 128;
    }
  }

  skip(wireType: number): void {
    if (wireType === WIRE_VARINT) this.varint();
    else if (wireType === WIRE_FIXED64) this.offset += 8;
    else if (wireType === WIRE_LENGTH) {
      const length = this.varint(); // read before `offset` is: `offset += varint()` would add to the old offset
      this.offset += length;
    }
    else if (wireType === WIRE_FIXED32) this.offset += 4;
    else throw new Error(`unexpected wire type ${wireType}`);
  }
}

const utf8 = new TextDecoder();

/** ConnectResponse.event (2) → Event.position (1), Event.data_update (10) → DataUpdate.id (1). */
export function decodeResponse(bytes: Uint8Array): Incoming {
  const reader = new Reader(bytes);
  const tag = reader.varint();
  if (tag >>> 3 !== 2 || (tag & 7) !== WIRE_LENGTH) return { kind: "other", message: fromBinary(ConnectResponseSchema, bytes) };
  const end = reader.varint() + reader.offset;
  let position = 0;
  let updateId = "";
  while (reader.offset < end) {
    const field = reader.varint();
    if (field === (1 << 3) + WIRE_VARINT) position = reader.varint();
    else if (field === (10 << 3) + WIRE_LENGTH) {
      const updateEnd = reader.varint() + reader.offset;
      while (reader.offset < updateEnd) {
        const inner = reader.varint();
        if (inner === (1 << 3) + WIRE_LENGTH) {
          const length = reader.varint();
          updateId = utf8.decode(bytes.subarray(reader.offset, reader.offset + length));
          reader.offset += length;
        } else reader.skip(inner & 7);
      }
    } else reader.skip(field & 7);
  }
  return { kind: "event", position, updateId };
}

function varintBytes(value: number, into: number[]): void {
  let rest = value;
  while (rest >= 0x80) {
    into.push((rest % 128) | 0x80);
    rest = Math.floor(rest / 128);
  }
  into.push(rest);
}

/** ConnectRequest.ack (2) = Ack{position (1), update_id (2), status (3) = APPLIED (1)}. */
export function encodeAck(position: number, updateId: string): Buffer {
  const ack: number[] = [0x08];
  varintBytes(position, ack);
  const id = Buffer.from(updateId, "utf8");
  ack.push(0x12);
  varintBytes(id.length, ack);
  const tail = [0x18, 0x01];
  const bodyLength = ack.length + id.length + tail.length;
  const head: number[] = [0x12];
  varintBytes(bodyLength, head);
  return Buffer.concat([Buffer.from(head), Buffer.from(ack), id, Buffer.from(tail)]);
}

export function encodeHello(hello: Partial<Omit<Hello, "$typeName" | "$unknown">>): Buffer {
  const bytes = toBinary(ConnectRequestSchema, create(ConnectRequestSchema, { message: { case: "hello", value: hello } }));
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

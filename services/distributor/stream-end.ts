/**
 * Ending a client's gRPC stream with a status it can read, and making sure the stream
 * goes even when the client does not read it.
 */
import { constants as http2 } from "node:http2";
import * as grpc from "@grpc/grpc-js";
import type { ConnectRequest } from "../../gen/opal/mesh/v1/distributor_pb.js";
import type { FrameSink } from "./session.js";

export type ConnectCall = grpc.ServerDuplexStream<ConnectRequest, Uint8Array>;

/** The statuses a session may end its stream with (FrameSink.fail). */
export const STATUS: Record<Parameters<FrameSink["fail"]>[0], grpc.status> = {
  resource_exhausted: grpc.status.RESOURCE_EXHAUSTED,
  unavailable: grpc.status.UNAVAILABLE,
  data_loss: grpc.status.DATA_LOSS,
  aborted: grpc.status.ABORTED,
};

/**
 * How long an ended stream may take to deliver its status before it is reset. The status
 * travels behind the frames grpc-js already holds; a client that does not read never gets
 * it, and its HTTP/2 stream (and those frames) would live as long as its connection.
 */
const END_GRACE_MS = 2_000;

/**
 * The HTTP/2 stream under a grpc-js server call. grpc-js has no API to reset a stream, so
 * this walks its call objects (call → nextCall… → stream); undefined if they change shape.
 */
interface ResettableStream {
  close(code: number): void;
  closed: boolean;
  destroyed: boolean;
}

function http2StreamOf(call: ConnectCall): ResettableStream | undefined {
  let node: unknown = (call as unknown as { call?: unknown }).call;
  for (let depth = 0; depth < 8 && typeof node === "object" && node !== null; depth++) {
    const stream = (node as { stream?: unknown }).stream;
    if (typeof stream === "object" && stream !== null && typeof (stream as { close?: unknown }).close === "function" && "rstCode" in stream) {
      return stream as unknown as ResettableStream;
    }
    node = (node as { nextCall?: unknown }).nextCall;
  }
  return undefined;
}

/**
 * Ends the call with `code`; after a grace period its HTTP/2 stream is reset and grpc-js's
 * own buffer of frames for it goes. Returns the grace timer (cleared once the call is gone).
 */
export function endCall(call: ConnectCall, code: grpc.status, details: string): NodeJS.Timeout {
  call.emit("error", { code, details });
  const timer = setTimeout(() => {
    const stream = http2StreamOf(call);
    if (stream !== undefined && !stream.closed && !stream.destroyed) stream.close(http2.NGHTTP2_ENHANCE_YOUR_CALM);
    call.destroy();
  }, END_GRACE_MS);
  timer.unref();
  return timer;
}

/**
 * The framing of OPAL's websocket channel (fastapi_websocket_rpc): JSON text frames, each
 * `{"request": {"method", "arguments", "call_id"}}` or `{"response": {"result",
 * "result_type", "call_id"}}`. Either side calls the other's methods; a response answers
 * the request with the same call_id.
 */
import { randomUUID } from "node:crypto";

export interface RpcRequest {
  method: string;
  arguments: Record<string, unknown>;
  callId: string | null;
}

export type RpcMessage = { kind: "request"; request: RpcRequest } | { kind: "response"; callId: string | null };

/** A frame that is not an RPC message: the connection is closed with this as the reason. */
export class RpcFrameError extends Error {}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function parseRpcMessage(text: string): RpcMessage {
  let message: unknown;
  try {
    message = JSON.parse(text);
  } catch {
    throw new RpcFrameError("a frame is not JSON");
  }
  if (!isObject(message)) throw new RpcFrameError("a frame is not a JSON object");
  const request = message.request;
  if (isObject(request)) {
    if (typeof request.method !== "string") throw new RpcFrameError("request.method must be a string");
    const args = request.arguments ?? {};
    if (!isObject(args)) throw new RpcFrameError("request.arguments must be an object");
    const callId = request.call_id;
    if (callId !== undefined && callId !== null && typeof callId !== "string") throw new RpcFrameError("request.call_id must be a string");
    return { kind: "request", request: { method: request.method, arguments: args, callId: callId ?? null } };
  }
  const response = message.response;
  if (isObject(response)) return { kind: "response", callId: typeof response.call_id === "string" ? response.call_id : null };
  throw new RpcFrameError("a frame has neither a request nor a response");
}

/** The answer to a request; `resultType` is the Python type name the library reports ("bool", "str"). */
export function responseFrame(callId: string | null, result: unknown, resultType: string): string {
  return JSON.stringify({ response: { result, result_type: resultType, call_id: callId } });
}

/**
 * A request to the other side. `argumentsJson` is JSON text already, so a notification's
 * payload (built once per event and scope) is spliced in rather than encoded again.
 */
export function requestFrame(method: string, argumentsJson: string, callId: string = randomUUID().replaceAll("-", "")): string {
  return `{"request":{"method":${JSON.stringify(method)},"arguments":${argumentsJson},"call_id":"${callId}"}}`;
}

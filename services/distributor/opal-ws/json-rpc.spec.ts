import { test } from "node:test";
import assert from "node:assert/strict";
import { parseRpcMessage, requestFrame, responseFrame, RpcFrameError } from "./json-rpc.js";

test("requests and responses parse as fastapi_websocket_rpc frames them", () => {
  assert.deepEqual(parseRpcMessage('{"request":{"method":"subscribe","arguments":{"topics":["a"]},"call_id":"c1"},"response":null}'), {
    kind: "request",
    request: { method: "subscribe", arguments: { topics: ["a"] }, callId: "c1" },
  });
  assert.deepEqual(parseRpcMessage('{"request":{"method":"_ping_"}}'), { kind: "request", request: { method: "_ping_", arguments: {}, callId: null } });
  assert.deepEqual(parseRpcMessage('{"request":null,"response":{"result":"None","result_type":"str","call_id":"x"}}'), { kind: "response", callId: "x" });
});

test("anything else is refused with a reason", () => {
  for (const [text, reason] of [
    ["not json", /not JSON/],
    ["[1]", /not a JSON object/],
    ['{"request":{"method":1}}', /method must be a string/],
    ['{"request":{"method":"m","arguments":[1]}}', /arguments must be an object/],
    ['{"other":{}}', /neither a request nor a response/],
  ] as const) {
    assert.throws(() => parseRpcMessage(text), (error: unknown) => error instanceof RpcFrameError && reason.test(error.message));
  }
});

test("frames we send are what the library parses", () => {
  assert.deepEqual(JSON.parse(responseFrame("c1", true, "bool")), { response: { result: true, result_type: "bool", call_id: "c1" } });
  const request = JSON.parse(requestFrame("notify", '{"data":{"x":1}}', "id1")) as unknown;
  assert.deepEqual(request, { request: { method: "notify", arguments: { data: { x: 1 } }, call_id: "id1" } });
  assert.match((JSON.parse(requestFrame("notify", "{}")) as { request: { call_id: string } }).request.call_id, /^[0-9a-f]{32}$/);
});

import assert from "node:assert/strict";
import test from "node:test";
import { AckStatus } from "../../gen/opal/mesh/v1/distributor_pb.js";
import { AckCoalescer } from "./ack-coalescer.js";
import type { AckFields } from "./sync-state.js";

const applied = (position: number, traced = false): AckFields => ({
  position: BigInt(position),
  updateId: `u${position}`,
  status: AckStatus.APPLIED,
  error: "",
  ...(traced ? { traceContext: { traceparent: "00-aa-bb-01" } } : {}),
});
const failed = (position: number): AckFields => ({ position: BigInt(position), updateId: `u${position}`, status: AckStatus.FAILED, error: "no" });
const shape = (ack: AckFields): string => `${ack.cumulative === true ? "through" : ack.status === AckStatus.FAILED ? "failed" : "applied"} ${ack.position}`;
/** The end of the event loop's turn, when a pending cumulative ack goes. */
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(() => setImmediate(resolve)));

test("APPLIED acks of one turn go as one cumulative ack; FAILED and traced ones alone, in log order", async () => {
  const sent: AckFields[] = [];
  const acks = new AckCoalescer((ack) => sent.push(ack), 10n, true);
  for (const position of [11, 12, 13]) acks.push(applied(position));
  acks.push(failed(14));
  acks.push(applied(15));
  acks.push(applied(16, true));
  acks.push(applied(17));
  acks.push(applied(18));
  assert.deepEqual(sent.map(shape), ["through 13", "failed 14", "through 15", "applied 16"]);
  await turn();
  assert.deepEqual(sent.map(shape), ["through 13", "failed 14", "through 15", "applied 16", "through 18"]);
  assert.equal(sent.at(-1)?.updateId, "");
});

test("positions up to the session's start, and every ack to a server without cumulative acks, go one by one", async () => {
  const sent: AckFields[] = [];
  const acks = new AckCoalescer((ack) => sent.push(ack), 10n, true);
  acks.push(applied(9));
  acks.push(applied(10));
  acks.push(applied(11));
  acks.restartAt(20n);
  acks.push(applied(20));
  acks.push(applied(21));
  await turn();
  assert.deepEqual(sent.map(shape), ["applied 9", "applied 10", "through 11", "applied 20", "through 21"]);

  const old: AckFields[] = [];
  const plain = new AckCoalescer((ack) => old.push(ack), 0n, false);
  for (const position of [1, 2, 3]) plain.push(applied(position));
  assert.deepEqual(old.map(shape), ["applied 1", "applied 2", "applied 3"]);
});

test("a closed stream's pending cumulative ack is dropped", async () => {
  const sent: AckFields[] = [];
  const acks = new AckCoalescer((ack) => sent.push(ack), 0n, true);
  acks.push(applied(1));
  acks.close();
  acks.push(applied(2));
  await turn();
  assert.deepEqual(sent, []);
});

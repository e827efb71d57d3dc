import { test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { AckSchema, AckStatus } from "../../gen/opal/mesh/v1/distributor_pb.js";
import { type Event, EventSchema } from "../../gen/opal/mesh/v1/event_pb.js";
import { ClientSession, type FrameSink } from "./session.js";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Records what the session writes; `backlog` (`backlogBytes`) is what the transport has not flushed. */
class FakeSink implements FrameSink {
  readonly frames: string[] = [];
  readonly failures: Array<[string, string]> = [];
  backlog = 0;
  backlogBytes = 0;

  write(frame: Uint8Array): boolean {
    this.frames.push(decoder.decode(frame));
    this.backlog++;
    this.backlogBytes += frame.byteLength;
    return true;
  }

  buffered(): number {
    return this.backlog;
  }

  bufferedBytes(): number {
    return this.backlogBytes;
  }

  drained(): void {
    this.backlog = 0;
    this.backlogBytes = 0;
    for (const wake of this.roomWaiters.splice(0)) wake();
  }

  readonly roomAskedFor: Array<[number, number]> = [];
  private readonly roomWaiters: Array<() => void> = [];

  whenBelow(frames: number, bytes: number): Promise<void> {
    this.roomAskedFor.push([frames, bytes]);
    if (this.backlog <= frames && this.backlogBytes <= bytes) return Promise.resolve();
    return new Promise((resolve) => this.roomWaiters.push(resolve));
  }

  fail(code: "resource_exhausted" | "unavailable" | "data_loss", message: string): void {
    this.failures.push([code, message]);
  }
}

function event(position: bigint, topics: string[] = ["a"]): Event {
  return create(EventSchema, { position, topics, payload: { case: "dataUpdate", value: { id: `u${position}` } } });
}

/** A frame the test can recognise in the sink: "event-<position>". */
function frame(position: bigint): Uint8Array {
  return encoder.encode(`event-${position}`);
}

function names(...positions: number[]): string[] {
  return positions.map((position) => `event-${position}`);
}

function newSession(maxFrames = 1000, topics: string[] = ["a"], maxBytes = 1024 * 1024 * 1024) {
  const sink = new FakeSink();
  const session = new ClientSession("client-1", topics, "127.0.0.1:5000", sink, { maxFrames, maxBytes });
  return { sink, session };
}

function deliver(session: ClientSession, ...positions: number[]): void {
  for (const position of positions) session.deliver(frame(BigInt(position)), event(BigInt(position)));
}

test("deliver() sends only positions after sentPosition", async (t) => {
  const cases: Array<[string, number[], string[], bigint]> = [
    ["in order", [1, 2, 3], names(1, 2, 3), 3n],
    ["a repeated position is sent once", [1, 2, 2, 3], names(1, 2, 3), 3n],
    ["an older position is dropped", [1, 3, 2, 4], names(1, 3, 4), 4n],
    ["gaps are fine", [2, 5, 9], names(2, 5, 9), 9n],
  ];
  for (const [name, positions, expected, sentPosition] of cases) {
    await t.test(name, () => {
      const { sink, session } = newSession();
      deliver(session, ...positions);
      assert.deepEqual(sink.frames, expected);
      assert.equal(session.sentPosition, sentPosition);
    });
  }
});

test("deliver() after skip() sends only later positions", () => {
  const { sink, session } = newSession();
  session.skip(5n);
  deliver(session, 4, 5, 6);
  assert.deepEqual(sink.frames, names(6));
});

test("accepts() follows topic coverage", async (t) => {
  const cases: Array<[string, string[], string[], boolean]> = [
    ["same topic", ["policy_data"], ["policy_data"], true],
    ["child topic", ["policy_data"], ["policy_data/users"], true],
    ["one of several topics", ["x", "policy_data"], ["other", "policy_data/users"], true],
    ["parent topic is not covered", ["policy_data/users"], ["policy_data"], false],
    ["prefix without a slash is not covered", ["policy"], ["policy_data"], false],
  ];
  for (const [name, subscribed, topics, expected] of cases) {
    await t.test(name, () => {
      const { session } = newSession(10, subscribed);
      assert.equal(session.accepts(event(1n, topics)), expected);
    });
  }
});

test("skip() advances sentPosition only forward and not while catching up", async (t) => {
  await t.test("forward only", () => {
    const { sink, session } = newSession();
    session.skip(4n);
    assert.equal(session.sentPosition, 4n);
    session.skip(2n);
    assert.equal(session.sentPosition, 4n);
    assert.deepEqual(sink.frames, [], "skipping sends nothing");
  });
  await t.test("ignored while catching up", () => {
    const { session } = newSession();
    session.beginCatchUp(3n);
    session.skip(10n);
    assert.equal(session.sentPosition, 3n);
    session.endCatchUp();
    session.skip(10n);
    assert.equal(session.sentPosition, 10n);
  });
});

test("catch-up holds back live frames and flushes them in order without duplicates", async (t) => {
  interface Case {
    after: bigint;
    /** Steps in the order they happen: ["live", n] or ["replay", n] or ["replay-skip", n]. */
    steps: Array<["live" | "replay" | "replay-skip", number]>;
    duringCatchUp: string[];
    atEnd: string[];
    sentPosition: bigint;
  }
  const cases: Array<[string, Case]> = [
    [
      "live events after the replay",
      { after: 2n, steps: [["live", 5], ["live", 6], ["replay", 3], ["replay", 4]], duringCatchUp: names(3, 4), atEnd: names(3, 4, 5, 6), sentPosition: 6n },
    ],
    [
      "replay overlaps the held-back live events",
      { after: 2n, steps: [["live", 5], ["live", 6], ["replay", 3], ["replay", 4], ["replay", 5]], duringCatchUp: names(3, 4, 5), atEnd: names(3, 4, 5, 6), sentPosition: 6n },
    ],
    [
      "replay covers every live event",
      { after: 0n, steps: [["replay", 1], ["live", 2], ["replay", 2], ["live", 3], ["replay", 3]], duringCatchUp: names(1, 2, 3), atEnd: names(1, 2, 3), sentPosition: 3n },
    ],
    [
      "replayed events not addressed to the client advance without a frame",
      { after: 0n, steps: [["live", 4], ["replay", 1], ["replay-skip", 2], ["replay", 3]], duringCatchUp: names(1, 3), atEnd: names(1, 3, 4), sentPosition: 4n },
    ],
    [
      "a live event already covered by the start position is dropped",
      { after: 5n, steps: [["live", 4], ["live", 5], ["live", 7], ["replay", 6]], duringCatchUp: names(6), atEnd: names(6, 7), sentPosition: 7n },
    ],
    [
      "a replayed position at or before sentPosition is ignored",
      { after: 3n, steps: [["replay", 2], ["replay", 3], ["replay", 4], ["replay", 4]], duringCatchUp: names(4), atEnd: names(4), sentPosition: 4n },
    ],
    ["nothing to replay", { after: 0n, steps: [["live", 1], ["live", 2]], duringCatchUp: [], atEnd: names(1, 2), sentPosition: 2n }],
  ];
  for (const [name, c] of cases) {
    await t.test(name, () => {
      const { sink, session } = newSession();
      session.beginCatchUp(c.after);
      for (const [kind, n] of c.steps) {
        const position = BigInt(n);
        if (kind === "live") session.deliver(frame(position), event(position));
        else session.sendCatchUp(kind === "replay" ? frame(position) : undefined, position);
      }
      assert.deepEqual(sink.frames, c.duringCatchUp, "live frames wait for the end of the catch-up");
      session.endCatchUp();
      assert.deepEqual(sink.frames, c.atEnd);
      assert.equal(session.sentPosition, c.sentPosition);
      deliver(session, Number(c.sentPosition) + 1);
      assert.equal(sink.frames.at(-1), `event-${c.sentPosition + 1n}`, "live frames flow directly after the catch-up");
    });
  }
});

test("firstPendingPosition() names the first held-back live event", () => {
  const { session } = newSession();
  assert.equal(session.firstPendingPosition(), undefined);
  session.beginCatchUp(0n);
  assert.equal(session.firstPendingPosition(), undefined);
  deliver(session, 7, 8);
  assert.equal(session.firstPendingPosition(), 7n);
  session.endCatchUp();
  assert.equal(session.firstPendingPosition(), undefined);
});

test("a client that does not read is terminated with resource_exhausted", async (t) => {
  await t.test("live delivery", () => {
    const { sink, session } = newSession(2);
    deliver(session, 1, 2);
    assert.equal(session.isClosed, false, "at the limit is still fine");
    deliver(session, 3);
    assert.equal(session.isClosed, true);
    assert.deepEqual(sink.failures.map(([code]) => code), ["resource_exhausted"]);
    assert.match(sink.failures[0]?.[1] ?? "", /more than 2 events/);
    deliver(session, 4, 5);
    session.sendControl(encoder.encode("ping"));
    assert.deepEqual(sink.frames, names(1, 2, 3), "nothing is written after termination");
    assert.equal(sink.failures.length, 1, "terminated once");
  });
  await t.test("a transport that drains is never terminated", () => {
    const { sink, session } = newSession(2);
    for (let position = 1; position <= 10; position++) {
      deliver(session, position);
      sink.drained();
    }
    assert.equal(session.isClosed, false);
    assert.equal(sink.frames.length, 10);
    assert.deepEqual(sink.failures, []);
  });
  await t.test("while flushing held-back frames", () => {
    const { sink, session } = newSession(2);
    session.beginCatchUp(0n);
    deliver(session, 1, 2);
    sink.backlog = 1; // the replay's last frame is still on its way
    session.endCatchUp();
    assert.deepEqual(sink.frames, names(1, 2), "the flush stops at termination");
    assert.deepEqual(sink.failures.map(([code]) => code), ["resource_exhausted"]);
    deliver(session, 4);
    session.sendCatchUp(frame(5n), 5n);
    assert.deepEqual(sink.frames, names(1, 2));
  });
});

/** A frame of `bytes` bytes for position `position`, recognisable as "event-<position>…". */
function sized(position: bigint, bytes: number): Uint8Array {
  const name = encoder.encode(`event-${position}`);
  const out = new Uint8Array(bytes);
  out.set(name.subarray(0, bytes));
  return out;
}

test("a client past the byte bound is terminated, naming the bound and where it resumes", async (t) => {
  const cases: Array<{ name: string; sizes: number[]; maxBytes: number; closedAfter: number | undefined }> = [
    { name: "under the bound", sizes: [100, 100], maxBytes: 250, closedAfter: undefined },
    { name: "at the bound exactly", sizes: [100, 150], maxBytes: 250, closedAfter: undefined },
    { name: "one byte over", sizes: [100, 151], maxBytes: 250, closedAfter: 2 },
    { name: "a single frame larger than the bound still goes", sizes: [1000], maxBytes: 250, closedAfter: undefined },
    { name: "but nothing may queue behind it", sizes: [1000, 10], maxBytes: 250, closedAfter: 2 },
  ];
  for (const { name, sizes, maxBytes, closedAfter } of cases) {
    await t.test(name, () => {
      const { sink, session } = newSession(1000, ["a"], maxBytes);
      session.recordAck(create(AckSchema, { position: 0n, status: AckStatus.APPLIED }));
      sizes.forEach((bytes, index) => session.deliver(sized(BigInt(index + 1), bytes), event(BigInt(index + 1))));
      assert.equal(session.isClosed, closedAfter !== undefined);
      if (closedAfter === undefined) return;
      assert.equal(sink.frames.length, closedAfter, "the frame that crossed the bound was the last one written");
      assert.deepEqual(sink.failures.map(([code]) => code), ["resource_exhausted"]);
      assert.match(sink.failures[0]?.[1] ?? "", new RegExp(`send buffer over ${maxBytes} bytes \\(${closedAfter} events waiting\\); resume from position 0`));
    });
  }
  await t.test("the message names the last position the client acknowledged", () => {
    const { sink, session } = newSession(1000, ["a"], 150);
    session.deliver(sized(1n, 100), event(1n));
    session.recordAck(create(AckSchema, { position: 1n, status: AckStatus.APPLIED }));
    session.deliver(sized(2n, 100), event(2n));
    assert.match(sink.failures[0]?.[1] ?? "", /resume from position 1$/);
  });
  await t.test("a transport that drains is never terminated, however many bytes pass", () => {
    const { sink, session } = newSession(1000, ["a"], 150);
    for (let position = 1n; position <= 20n; position++) {
      session.deliver(sized(position, 100), event(position));
      sink.drained();
    }
    assert.equal(session.isClosed, false);
    assert.equal(sink.frames.length, 20);
  });
});

test("live events held back during a catch-up are bounded too", async (t) => {
  await t.test("in bytes", () => {
    const { sink, session } = newSession(1000, ["a"], 250);
    session.beginCatchUp(0n);
    session.deliver(sized(1n, 100), event(1n));
    session.deliver(sized(2n, 100), event(2n));
    assert.equal(session.isClosed, false);
    session.deliver(sized(3n, 100), event(3n));
    assert.equal(session.isClosed, true);
    assert.match(sink.failures[0]?.[1] ?? "", /cannot catch up \(over 250 bytes or 1000 live events held back\)/);
    session.endCatchUp();
    assert.deepEqual(sink.frames, [], "nothing held back is flushed after termination");
  });
  await t.test("in events", () => {
    const { sink, session } = newSession(2);
    session.beginCatchUp(0n);
    deliver(session, 1, 2, 3);
    assert.deepEqual(sink.failures.map(([code]) => code), ["resource_exhausted"]);
  });
});

test("roomForCatchUp() waits until the client took half of what may wait for it", async () => {
  const { sink, session } = newSession(10, ["a"], 1000);
  let ready = false;
  session.sendCatchUp(sized(1n, 600), 1n);
  const room = session.roomForCatchUp().then(() => {
    ready = true;
  });
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(sink.roomAskedFor, [[5, 500]]);
  assert.equal(ready, false, "600 bytes wait, more than half of 1000");
  sink.drained();
  await room;
  assert.equal(ready, true);
});

test("close() drops held-back frames and stops delivery", () => {
  const { sink, session } = newSession();
  session.beginCatchUp(0n);
  deliver(session, 1, 2);
  session.close();
  session.endCatchUp();
  deliver(session, 3);
  session.sendControl(encoder.encode("ping"));
  assert.deepEqual(sink.frames, []);
  assert.deepEqual(sink.failures, [], "close() is not a failure");
  session.terminate("unavailable", "shutting down");
  assert.deepEqual(sink.failures, [], "terminate() after close() does nothing");
});

test("terminate() fails the stream once", () => {
  const { sink, session } = newSession();
  session.terminate("unavailable", "server shutting down");
  session.terminate("data_loss", "again");
  assert.deepEqual(sink.failures, [["unavailable", "server shutting down"]]);
  assert.equal(session.isClosed, true);
});

test("sendControl() writes frames outside the position order", () => {
  const { sink, session } = newSession();
  deliver(session, 4);
  session.sendControl(encoder.encode("ping"));
  assert.deepEqual(sink.frames, [...names(4), "ping"]);
  assert.equal(session.sentPosition, 4n, "control frames carry no position");
});

test("recordAck() tracks the highest acked position and the last failure", async (t) => {
  type AckInput = [number, AckStatus, string, string];
  const cases: Array<[string, AckInput[], bigint, { position: bigint; updateId: string; error: string } | undefined]> = [
    ["no acks", [], 0n, undefined],
    ["applied in order", [[1, AckStatus.APPLIED, "u1", ""], [2, AckStatus.APPLIED, "u2", ""]], 2n, undefined],
    ["an older ack does not move the position back", [[5, AckStatus.APPLIED, "u5", ""], [3, AckStatus.APPLIED, "u3", ""]], 5n, undefined],
    [
      "a failure is remembered after later successes",
      [[3, AckStatus.APPLIED, "u3", ""], [4, AckStatus.FAILED, "u4", "opa down"], [5, AckStatus.APPLIED, "u5", ""]],
      5n,
      { position: 4n, updateId: "u4", error: "opa down" },
    ],
    [
      "the latest failure wins",
      [[4, AckStatus.FAILED, "u4", "first"], [6, AckStatus.FAILED, "u6", "second"]],
      6n,
      { position: 6n, updateId: "u6", error: "second" },
    ],
    ["a failed ack also counts as processed", [[7, AckStatus.FAILED, "", "bad policy"]], 7n, { position: 7n, updateId: "", error: "bad policy" }],
    ["unspecified status is not a failure", [[2, AckStatus.UNSPECIFIED, "u2", ""]], 2n, undefined],
  ];
  for (const [name, acks, ackedPosition, lastFailure] of cases) {
    await t.test(name, () => {
      const { session } = newSession();
      for (const [position, status, updateId, error] of acks) {
        session.recordAck(create(AckSchema, { position: BigInt(position), status, updateId, error }));
      }
      assert.equal(session.ackedPosition, ackedPosition);
      assert.deepEqual(session.lastFailure, lastFailure);
    });
  }
});

test("a cumulative ACK covers what was sent after the session's start or the last cumulative ACK, never past what was sent", () => {
  const { session } = newSession();
  session.startAt(10n);
  deliver(session, 11, 12, 13);
  const cumulative = (position: bigint) => create(AckSchema, { position, status: AckStatus.APPLIED, cumulative: true });
  assert.deepEqual(session.recordAck(cumulative(12n)), { after: 10n, through: 12n });
  assert.deepEqual(session.recordAck(cumulative(99n)), { after: 12n, through: 13n }, "clamped to the sent position");
  assert.equal(session.recordAck(cumulative(13n)), undefined, "nothing new");
  assert.equal(session.ackedPosition, 13n);
  // A plain ACK (and a FAILED one marked cumulative) is not a range.
  assert.equal(session.recordAck(create(AckSchema, { position: 13n, status: AckStatus.FAILED, error: "x", cumulative: true })), undefined);
  session.resync(new Uint8Array([1]), 20n);
  deliver(session, 21);
  assert.deepEqual(session.recordAck(cumulative(21n)), { after: 20n, through: 21n }, "counted from the resync's head");
});

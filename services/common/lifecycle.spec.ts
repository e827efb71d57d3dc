import { test } from "node:test";
import assert from "node:assert/strict";
import { Closing, component, type Component, Supervisor } from "./lifecycle.js";
import { createLogger } from "./logger.js";

const logger = createLogger({ level: "silent", format: "json" });

function recorded(name: string, log: string[], options: { failStart?: boolean; hangStop?: boolean } = {}) {
  return component(name, {
    start: () => {
      if (options.failStart === true) throw new Error(`${name} cannot start`);
      log.push(`start ${name}`);
    },
    stop: () => {
      log.push(`stop ${name}`);
      return options.hangStop === true ? new Promise<void>(() => undefined) : undefined;
    },
  });
}

test("parts start in order and stop in reverse, once, and closed says why", async () => {
  const log: string[] = [];
  const parts = [recorded("store", log), recorded("stream", log), recorded("api", log)];
  const supervisor = new Supervisor(parts, logger);
  await supervisor.start();
  await Promise.all([supervisor.stop(), supervisor.stop()]);
  assert.deepEqual(log, ["start store", "start stream", "start api", "stop api", "stop stream", "stop store"]);
  assert.deepEqual(await supervisor.closed, { reason: "stopped" });
  for (const part of parts) assert.deepEqual(await part.closed, { reason: "stopped" });
  assert.equal(supervisor.signal.aborted, true);
});

test("a part that fails to start stops the ones before it, and nothing after it starts", async () => {
  const log: string[] = [];
  const supervisor = new Supervisor([recorded("store", log), recorded("stream", log, { failStart: true }), recorded("api", log)], logger);
  await assert.rejects(supervisor.start(), /stream cannot start/);
  assert.deepEqual(log, ["start store", "stop store"]);
});

test("a part that fails while running takes the others down, and the supervisor's closed names the failure", async () => {
  const log: string[] = [];
  const store = recorded("store", log);
  const stream = recorded("stream", log);
  const supervisor = new Supervisor([store, stream], logger);
  await supervisor.start();
  stream.fail(new Error("the stream broke"));
  const closed = await supervisor.closed;
  assert.equal(closed.reason, "failed");
  assert.match(closed.reason === "failed" ? closed.error.message : "", /the stream broke/);
  assert.deepEqual(log, ["start store", "start stream", "stop stream", "stop store"]);
});

test("a part that does not stop in time does not hold the others past the deadline", async () => {
  const log: string[] = [];
  const supervisor = new Supervisor([recorded("store", log), recorded("stuck", log, { hangStop: true })], logger, 50);
  await supervisor.start();
  await supervisor.stop();
  assert.deepEqual(log, ["start store", "start stuck", "stop stuck", "stop store"]);
});

test("Closing settles once, with the first reason, and never rejects", async () => {
  const closing = new Closing();
  assert.equal(closing.isClosed, false);
  closing.failed("boom");
  closing.stopped();
  const closed = await closing.closed;
  assert.equal(closed.reason, "failed");
  assert.equal(closing.isClosed, true);
  const part: Component = component("plain", {});
  await part.start(new AbortController().signal);
  await part.stop();
  assert.deepEqual(await part.closed, { reason: "stopped" });
});

test("a supervisor is a part: its owner's signal stops what it started", async () => {
  const log: string[] = [];
  const owner = new AbortController();
  const supervisor = new Supervisor([recorded("inner", log)], logger, 1_000, "composite");
  const outer = new Supervisor([supervisor], logger);
  await outer.start(owner.signal);
  owner.abort();
  assert.deepEqual(await supervisor.closed, { reason: "stopped" });
  assert.deepEqual(log, ["start inner", "stop inner"]);
  assert.equal(supervisor.name, "composite");
  await outer.stop();
});

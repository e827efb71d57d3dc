import { test } from "node:test";
import assert from "node:assert/strict";
import { backoffDelay, retry, sleep } from "./backoff.js";

test("backoffDelay grows exponentially and is capped", () => {
  const options = { initialMs: 100, maxMs: 1000, jitter: 0 };
  assert.deepEqual([1, 2, 3, 4, 5, 6].map((attempt) => backoffDelay(attempt, options)), [100, 200, 400, 800, 1000, 1000]);
});

test("backoffDelay jitter only shortens the delay", () => {
  const options = { initialMs: 100, maxMs: 1000, jitter: 0.5 };
  assert.equal(backoffDelay(2, options, () => 1), 100);
  assert.equal(backoffDelay(2, options, () => 0), 200);
});

test("retry returns the first success and reports each retry", async () => {
  const seen: number[] = [];
  const result = await retry(
    (attempt) => (attempt < 3 ? Promise.reject(new Error(`fail ${attempt}`)) : Promise.resolve(attempt)),
    { attempts: 5, backoff: { initialMs: 1, maxMs: 2 }, onRetry: (_error, attempt) => seen.push(attempt) },
  );
  assert.equal(result, 3);
  assert.deepEqual(seen, [1, 2]);
});

test("retry gives up after the last attempt with the last error", async () => {
  await assert.rejects(
    retry((attempt) => Promise.reject(new Error(`fail ${attempt}`)), { attempts: 2, backoff: { initialMs: 1, maxMs: 1 } }),
    /fail 2/,
  );
});

test("retry stops at once on a non-retryable error", async () => {
  let calls = 0;
  await assert.rejects(
    retry(
      () => {
        calls++;
        return Promise.reject(new Error("bad request"));
      },
      { attempts: 5, backoff: { initialMs: 1, maxMs: 1 }, isRetryable: () => false },
    ),
    /bad request/,
  );
  assert.equal(calls, 1);
});

test("sleep is interrupted by the signal", async () => {
  const controller = new AbortController();
  const pending = sleep(60_000, controller.signal);
  controller.abort(new Error("stopping"));
  await assert.rejects(pending, /stopping/);
});

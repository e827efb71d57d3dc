/**
 * OPAL's ConnRetryOptions JSON ({"wait_strategy", "wait_time", "attempts", "max_wait"})
 * mapped onto our one backoff helper.
 */
import type { BackoffOptions } from "../backoff.js";

export interface RetryPolicy {
  attempts: number;
  backoff: BackoffOptions;
}

const STRATEGIES = ["fixed", "exponential", "random_exponential"] as const;

export function parseConnRetryOptions(value: unknown, defaults: { strategy: (typeof STRATEGIES)[number]; waitTime: number; attempts: number; maxWait: number }): RetryPolicy {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new Error('expected an object like {"wait_strategy": "random_exponential", "wait_time": 1, "attempts": 5, "max_wait": 10}');
  }
  const record = value as Record<string, unknown>;
  const strategy = record.wait_strategy ?? defaults.strategy;
  if (typeof strategy !== "string" || !(STRATEGIES as readonly string[]).includes(strategy)) {
    throw new Error(`wait_strategy must be one of ${STRATEGIES.join(", ")}, got ${JSON.stringify(strategy)}`);
  }
  const number = (key: string, fallback: number, min: number): number => {
    const raw = record[key] ?? fallback;
    if (typeof raw !== "number" || !Number.isFinite(raw) || raw < min) {
      throw new Error(`${key} must be a number ≥ ${min}, got ${JSON.stringify(raw)}`);
    }
    return raw;
  };
  const waitMs = number("wait_time", defaults.waitTime, 0) * 1000;
  const attempts = Math.floor(number("attempts", defaults.attempts, 1));
  const maxMs = number("max_wait", defaults.maxWait, 0) * 1000;
  return toPolicy(strategy as (typeof STRATEGIES)[number], waitMs, attempts, maxMs);
}

export function defaultRetryPolicy(defaults: { strategy: (typeof STRATEGIES)[number]; waitTime: number; attempts: number; maxWait: number }): RetryPolicy {
  return toPolicy(defaults.strategy, defaults.waitTime * 1000, defaults.attempts, defaults.maxWait * 1000);
}

function toPolicy(strategy: (typeof STRATEGIES)[number], waitMs: number, attempts: number, maxMs: number): RetryPolicy {
  switch (strategy) {
    case "fixed":
      return { attempts, backoff: { initialMs: waitMs, maxMs: waitMs, multiplier: 1, jitter: 0 } };
    case "exponential":
      return { attempts, backoff: { initialMs: waitMs, maxMs: Math.max(waitMs, maxMs), jitter: 0 } };
    case "random_exponential":
      return { attempts, backoff: { initialMs: waitMs, maxMs: Math.max(waitMs, maxMs), jitter: 1 } };
  }
}

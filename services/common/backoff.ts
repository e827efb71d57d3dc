/**
 * The one backoff helper every retry loop uses: exponential, jittered, capped, and
 * interruptible by an AbortSignal.
 */
export interface BackoffOptions {
  /** Delay before the first retry. */
  initialMs: number;
  /** Upper bound of any delay. */
  maxMs: number;
  multiplier?: number;
  /** Fraction of each delay randomised away (0 = none, 1 = "full jitter"). */
  jitter?: number;
}

export function backoffDelay(attempt: number, options: BackoffOptions, random: () => number = Math.random): number {
  const multiplier = options.multiplier ?? 2;
  const jitter = options.jitter ?? 0.2;
  const exponential = Math.min(options.maxMs, options.initialMs * multiplier ** Math.max(0, attempt - 1));
  return Math.max(0, Math.round(exponential * (1 - jitter * random())));
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted === true) {
      reject(signal.reason as Error);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason as Error);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

export interface RetryOptions {
  /** Total attempts, the first included; Infinity retries until aborted. */
  attempts: number;
  backoff: BackoffOptions;
  signal?: AbortSignal;
  /** Errors for which retrying cannot help; they are thrown at once. */
  isRetryable?: (error: unknown) => boolean;
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
}

export async function retry<T>(operation: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await operation(attempt);
    } catch (error) {
      if (options.signal?.aborted === true) throw error;
      if (attempt >= options.attempts) throw error;
      if (options.isRetryable !== undefined && !options.isRetryable(error)) throw error;
      const delayMs = backoffDelay(attempt, options.backoff);
      options.onRetry?.(error, attempt, delayMs);
      await sleep(delayMs, options.signal);
    }
  }
}

// Exponential backoff with jitter for transient faults. An attempt that made progress (wrote bytes)
// resets the count, so a long download over a flaky link is not capped by the attempt limit.

import { setTimeout as sleep } from 'node:timers/promises';
import { FetchError } from './errors.js';

export interface RetryPolicy {
  /** Attempts without progress before giving up. */
  readonly attempts: number;
  /** Delay before the first retry, doubled each time, in milliseconds. */
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
}

export const defaultRetryPolicy: RetryPolicy = { attempts: 8, baseDelayMs: 500, maxDelayMs: 30_000 };

/** The wait before retry number `n` (0-based): base·2^n, capped, with ±25 % jitter. */
export function backoffDelay(policy: RetryPolicy, n: number): number {
  const raw = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** n);
  return Math.round(raw * (0.75 + Math.random() * 0.5));
}

export interface AttemptOutcome<T> {
  readonly value?: T;
  /** True when the attempt moved forward (bytes written) even though it failed. */
  readonly progressed: boolean;
}

/**
 * Run `attempt` until it returns a value, retrying FetchErrors marked retryable.
 * `attempt` reports progress through the `progressed` flag it sets on failure.
 */
export async function withRetries<T>(
  policy: RetryPolicy,
  signal: AbortSignal | undefined,
  attempt: (state: { progressed: boolean }) => Promise<T>,
  onRetry?: (err: FetchError, delayMs: number, failures: number) => void,
): Promise<T> {
  let failures = 0;
  for (;;) {
    const state = { progressed: false };
    try {
      return await attempt(state);
    } catch (err) {
      if (!(err instanceof FetchError) || !err.retryable) throw err;
      if (signal?.aborted) throw new FetchError('aborted', 'download aborted');
      failures = state.progressed ? 0 : failures + 1;
      if (failures >= policy.attempts) {
        throw new FetchError(err.code, `${err.message} (gave up after ${failures} attempts without progress)`, {
          ...(err.status !== undefined ? { status: err.status } : {}),
        });
      }
      const delay = backoffDelay(policy, Math.max(0, failures - 1));
      onRetry?.(err, delay, failures);
      try {
        await sleep(delay, undefined, signal ? { signal } : {});
      } catch {
        throw new FetchError('aborted', 'download aborted');
      }
    }
  }
}

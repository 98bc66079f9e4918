/**
 * Every activity heartbeats on a timer for its whole life, whatever step it is in: a slow command on
 * a server, a re-read from storage, a database scan. Heartbeats are how Temporal learns that a
 * worker died (the heartbeat timeout) and how an attempt learns that it was cancelled or timed out
 * (the SDK delivers that on `Context.cancellationSignal` in answer to a heartbeat). Progress reported
 * with {@link heartbeat} rides along: the timer repeats the latest details, so a retry or an operator
 * always sees the last progress, not an empty heartbeat.
 *
 * The worker installs {@link heartbeatInterceptor} for all activities; {@link keepHeartbeating} is the
 * same timer for code that runs an activity body by other means.
 */
import { Context } from '@temporalio/activity';
import type { ActivityInterceptorsFactory } from '@temporalio/worker';

const latestDetails = new WeakMap<Context, { details: unknown }>();

/** The running activity's context, or undefined outside one (direct calls in tests and scripts). */
export function activityContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

/**
 * Heartbeats now with `details` and makes them what the timer repeats. A no-op outside an activity.
 * The SDK throttles what reaches the server (at most every 80 % of the heartbeat timeout).
 */
export function heartbeat(details?: unknown): void {
  const ctx = activityContext();
  if (!ctx) return;
  latestDetails.set(ctx, { details });
  ctx.heartbeat(details);
}

/**
 * How often the timer beats: a quarter of the heartbeat timeout (so two beats can be lost before it
 * expires), between 100 ms and 10 s; 10 s when the activity has none (beats still deliver cancellation).
 */
export function heartbeatEveryMs(heartbeatTimeoutMs: number | undefined): number {
  if (!heartbeatTimeoutMs) return 10_000;
  return Math.min(10_000, Math.max(100, Math.floor(heartbeatTimeoutMs / 4)));
}

/** Runs `fn`, heartbeating `ctx` on a timer (with the latest reported details) until it settles. */
export async function keepHeartbeating<T>(ctx: Context, fn: () => Promise<T>): Promise<T> {
  const beat = () => ctx.heartbeat(latestDetails.get(ctx)?.details);
  beat();
  const timer = setInterval(beat, heartbeatEveryMs(ctx.info.heartbeatTimeoutMs));
  try {
    return await fn();
  } finally {
    clearInterval(timer);
  }
}

/** Worker interceptor: every activity execution heartbeats on the timer (worker/main.ts installs it). */
export const heartbeatInterceptor: ActivityInterceptorsFactory = (ctx) => ({
  inbound: {
    execute: (input, next) => keepHeartbeating(ctx, () => next(input)),
  },
});

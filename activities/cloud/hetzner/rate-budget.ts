import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Tracks Hetzner's request budget from the `RateLimit-*` headers so that the client never sends
 * more requests at once than the remaining budget can take, and sends nothing at all between a 429
 * and its `RateLimit-Reset`.
 *
 * Hetzner refills the budget gradually (3600/h = one per second) and `RateLimit-Reset` is when it is
 * full again, so between observations we assume a linear refill from `remaining` to `limit` at reset.
 */
export class RateBudget {
  private limit: number | undefined;
  private remaining: number | undefined;
  private observedAt = 0;
  private resetAtMs = 0;
  private blockedUntilMs = 0;
  private inFlight = 0;
  private readonly now: () => number;

  constructor(now: () => number = Date.now) {
    this.now = now;
  }

  /** Waits until one more request fits the budget, then counts it as in flight. */
  async acquire(): Promise<void> {
    for (;;) {
      const now = this.now();
      if (now < this.blockedUntilMs) {
        await sleep(this.blockedUntilMs - now);
        continue;
      }
      // Until the first response tells us the budget, probe with one request at a time.
      const available = this.remaining === undefined ? 1 - this.inFlight : this.estimate(now) - this.inFlight;
      if (available >= 1) {
        this.inFlight++;
        return;
      }
      await sleep(this.waitForOneMs(now));
    }
  }

  /** Call once per acquired request, after its response (if any) was observed. */
  release(): void {
    this.inFlight = Math.max(0, this.inFlight - 1);
  }

  /** Records the budget the API reported with a response. */
  observe(headers: Record<string, string | string[] | undefined>): void {
    const limit = headerNumber(headers['ratelimit-limit']);
    const remaining = headerNumber(headers['ratelimit-remaining']);
    const reset = headerNumber(headers['ratelimit-reset']);
    if (limit === undefined || remaining === undefined || reset === undefined) return;
    this.limit = limit;
    // Responses of concurrent requests arrive in any order: never raise the estimate with a stale figure.
    const now = this.now();
    this.remaining = this.remaining === undefined ? remaining : Math.min(remaining, this.estimate(now));
    this.observedAt = now;
    this.resetAtMs = reset * 1000;
  }

  /** After a 429: nothing leaves before the reset time. */
  blockUntil(resetAtMs: number): void {
    this.blockedUntilMs = Math.max(this.blockedUntilMs, resetAtMs);
    this.remaining = 0;
    this.observedAt = this.now();
    this.resetAtMs = Math.max(this.resetAtMs, resetAtMs);
  }

  /** When requests may flow again, for callers deciding whether to wait or give up. */
  get blockedUntil(): number {
    return this.blockedUntilMs;
  }

  private estimate(now: number): number {
    if (this.remaining === undefined || this.limit === undefined) return Infinity;
    if (now >= this.resetAtMs) return this.limit;
    const span = this.resetAtMs - this.observedAt;
    if (span <= 0) return this.limit;
    const rate = (this.limit - this.remaining) / span;
    return Math.min(this.limit, Math.floor(this.remaining + (now - this.observedAt) * rate));
  }

  private waitForOneMs(now: number): number {
    if (this.limit === undefined || this.remaining === undefined || this.resetAtMs <= now) return 50;
    const rate = (this.limit - this.remaining) / Math.max(1, this.resetAtMs - this.observedAt);
    const perToken = rate > 0 ? 1 / rate : this.resetAtMs - now;
    // Responses in flight may update the picture sooner; look again at least every quarter second.
    return Math.max(10, Math.min(250, Math.ceil(perToken)));
  }
}

function headerNumber(value: string | string[] | undefined): number | undefined {
  const raw = Array.isArray(value) ? value[0] : value;
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  return Number.isFinite(n) ? n : undefined;
}

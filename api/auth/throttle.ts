/**
 * Throttling of the account endpoints (sign-in, registration, password reset, email verification,
 * password confirmation) with growing delays, per account and per client address, held in
 * PostgreSQL by rate-limiter-flexible so every web process sees the same counts (ASVS 5.0 V6.3.1;
 * OWASP Authentication Cheat Sheet: throttle with exponential back-off rather than lock accounts).
 *
 * A rule lets `free` counted events through per window; each one after that blocks the key for a
 * delay that doubles from `firstDelaySeconds` up to `maxDelaySeconds`. While blocked, every attempt
 * is refused — the right password included, so a block reveals nothing — without being counted.
 * Keys are stored as SHA-256 digests: the table holds no address or email.
 */
import { createHash } from 'node:crypto';
import pg from 'pg';
import { RateLimiterPostgres } from 'rate-limiter-flexible';

export interface ThrottleRule {
  name: string;
  free: number;
  windowSeconds: number;
  firstDelaySeconds: number;
  maxDelaySeconds: number;
}

const hour = 3600;

/** Berth's rules; the names are part of the stored keys. */
export const throttleRules = {
  /** Wrong passwords for one account, from anywhere: the brute force a botnet spreads out. */
  signInAccount: { name: 'signin-account', free: 5, windowSeconds: 24 * hour, firstDelaySeconds: 1, maxDelaySeconds: 15 * 60 },
  /** Wrong passwords from one address, over any accounts: password spraying. */
  signInClient: { name: 'signin-client', free: 20, windowSeconds: hour, firstDelaySeconds: 1, maxDelaySeconds: hour },
  /** Accounts created (or attempted) from one address. */
  registerClient: { name: 'register-client', free: 5, windowSeconds: hour, firstDelaySeconds: 30, maxDelaySeconds: hour },
  /** Mails asked for one address (reset links, "you already have an account"). */
  mailAddress: { name: 'mail-address', free: 3, windowSeconds: hour, firstDelaySeconds: 60, maxDelaySeconds: hour },
  /** Password reset requests from one address. */
  resetClient: { name: 'reset-client', free: 5, windowSeconds: hour, firstDelaySeconds: 30, maxDelaySeconds: hour },
  /** Verification links tried from one address that did not work. */
  verifyClient: { name: 'verify-client', free: 10, windowSeconds: hour, firstDelaySeconds: 1, maxDelaySeconds: hour },
} as const satisfies Record<string, ThrottleRule>;

/** One rule applied to one key (an account's email, a client address, ...). */
export interface ThrottleCheck {
  rule: ThrottleRule;
  key: string;
}

/** Refused: try again after this many seconds. */
export interface Throttled {
  retryAfterSeconds: number;
}

export interface Throttle {
  /** Null when every check may go ahead; otherwise the longest wait among the blocked ones. */
  blocked(checks: readonly ThrottleCheck[]): Promise<Throttled | null>;
  /** Counts an event against each check; returns the block it started, if any. */
  count(checks: readonly ThrottleCheck[]): Promise<Throttled | null>;
  /** Forgets a key's count and block (e.g. an account's failures after a successful sign-in). */
  reset(checks: readonly ThrottleCheck[]): Promise<void>;
  close(): Promise<void>;
}

/** The delay the `n`th counted event (1-based) starts under `rule`, in seconds (0: none). */
export function delayFor(rule: ThrottleRule, n: number): number {
  if (n <= rule.free) return 0;
  return Math.min(rule.maxDelaySeconds, rule.firstDelaySeconds * 2 ** Math.min(30, n - rule.free - 1));
}

/** The table the migration creates (rate-limiter-flexible's own layout). */
export const throttleTable = 'rate_limits';

export function createThrottle(opts: { databaseUrl: string; schema?: string }): Throttle {
  const pool = new pg.Pool({ connectionString: opts.databaseUrl, max: 4 });
  const limiters = new Map<string, { counts: RateLimiterPostgres; blocks: RateLimiterPostgres }>();
  const common = { storeClient: pool, storeType: 'pool', tableName: throttleTable, schemaName: opts.schema, tableCreated: true, clearExpiredByTimeout: true };
  const of = (rule: ThrottleRule) => {
    let pair = limiters.get(rule.name);
    if (!pair) {
      pair = {
        counts: new RateLimiterPostgres({ ...common, keyPrefix: `${rule.name}:n`, points: 1_000_000, duration: rule.windowSeconds }),
        blocks: new RateLimiterPostgres({ ...common, keyPrefix: `${rule.name}:b`, points: 1, duration: 1 }),
      };
      limiters.set(rule.name, pair);
    }
    return pair;
  };
  const digest = (check: ThrottleCheck) => createHash('sha256').update(check.key.trim().toLowerCase()).digest('hex');
  const longest = (waits: number[]): Throttled | null => {
    const most = Math.max(0, ...waits);
    return most > 0 ? { retryAfterSeconds: most } : null;
  };

  return {
    async blocked(checks) {
      const waits = await Promise.all(checks.map(async (check) => {
        const res = await of(check.rule).blocks.get(digest(check));
        // block() stores points + 1 = 2; a row with 1 is an expired or never-blocked key.
        return res && res.consumedPoints > 1 && res.msBeforeNext > 0 ? Math.ceil(res.msBeforeNext / 1000) : 0;
      }));
      return longest(waits);
    },
    async count(checks) {
      const waits = await Promise.all(checks.map(async (check) => {
        const { counts, blocks } = of(check.rule);
        const key = digest(check);
        const res = await counts.consume(key);
        const delay = delayFor(check.rule, res.consumedPoints);
        if (delay > 0) await blocks.block(key, delay);
        return delay;
      }));
      return longest(waits);
    },
    async reset(checks) {
      await Promise.all(checks.map(async (check) => {
        const { counts, blocks } = of(check.rule);
        const key = digest(check);
        await Promise.all([counts.delete(key), blocks.delete(key)]);
      }));
    },
    close: () => pool.end(),
  };
}

/** "Try again in 5 minutes." — in words a person reads, rounded up. */
export function retryText(seconds: number): string {
  if (seconds < 60) return `Too many attempts. Try again in ${seconds} second${seconds === 1 ? '' : 's'}.`;
  const minutes = Math.ceil(seconds / 60);
  return `Too many attempts. Try again in ${minutes} minute${minutes === 1 ? '' : 's'}.`;
}

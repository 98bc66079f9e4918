import { afterAll, expect, test } from 'vitest';
import { createThrottle, delayFor, throttleRules, type ThrottleRule } from '../../api/auth/throttle.ts';
import { useTestDatabase } from '../support/db.ts';

const t = useTestDatabase({ name: 'throttle' });
const throttles: ReturnType<typeof createThrottle>[] = [];
afterAll(async () => {
  for (const th of throttles) await th.close();
});

test('the delay curve: free tries, then doubling from the first delay up to the cap', () => {
  const rule: ThrottleRule = { name: 'x', free: 5, windowSeconds: 60, firstDelaySeconds: 1, maxDelaySeconds: 15 };
  expect([1, 5, 6, 7, 8, 9, 10, 11, 50].map((n) => delayFor(rule, n))).toEqual([0, 0, 1, 2, 4, 8, 15, 15, 15]);
  expect(delayFor(throttleRules.signInAccount, 1000)).toBe(900);
});

test('counts and blocks live in PostgreSQL: two web processes see the same, and a block ends on time', async () => {
  const rule: ThrottleRule = { name: 'test-signin', free: 2, windowSeconds: 60, firstDelaySeconds: 1, maxDelaySeconds: 4 };
  const a = createThrottle({ databaseUrl: t.url, schema: t.schema });
  const b = createThrottle({ databaseUrl: t.url, schema: t.schema });
  throttles.push(a, b);
  const check = [{ rule, key: 'Someone@Example.com' }];
  expect(await a.count(check)).toBeNull();
  expect(await b.count([{ rule, key: ' someone@example.com' }])).toBeNull();
  expect(await a.blocked(check)).toBeNull();
  expect(await b.count(check)).toEqual({ retryAfterSeconds: 1 });
  expect((await a.blocked(check))?.retryAfterSeconds).toBe(1);
  await new Promise((r) => setTimeout(r, 1100));
  expect(await b.blocked(check)).toBeNull();
  expect(await a.count(check)).toEqual({ retryAfterSeconds: 2 });
  await a.reset(check);
  expect(await b.blocked(check)).toBeNull();
  expect(await b.count(check)).toBeNull();
  // Nothing readable is stored: keys are digests.
  const rows = await t.db.selectFrom('rateLimits' as never).selectAll().execute() as { key: string }[];
  expect(rows.length).toBeGreaterThan(0);
  for (const row of rows) expect(row.key).toMatch(/^test-signin:[nb]:[0-9a-f]{64}$/);
});

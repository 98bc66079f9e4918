/** The pure lifecycle timing in workflows/deadlines.ts: UTC arithmetic, leap years, missed steps. */
import { describe, expect, it } from 'vitest';
import {
  accessEndsAtMs, applyBillingEvent, deadlines, deriveStage, dueDeadline, dueOffset, finalBackupRetryDelayMs, initialBillingState,
  nextDeadline, nextPeriodicBackupAt, resolveConfig, spreadHash, toIso, type BillingState, type ScheduleInput,
} from '../../workflows/deadlines.ts';

const day = 86_400_000;
const config = resolveConfig({ idle: { afterMs: null, policy: 'stop' }, dailyBackupEveryMs: null });
const ms = (iso: string): number => Date.parse(iso);

function input(billing: Partial<BillingState>, nowIso: string, extra: Partial<ScheduleInput> = {}): ScheduleInput {
  return {
    customerId: 'c1', nowMs: ms(nowIso), phase: 'serving', config, serverRunning: true, lastActivityAtMs: ms(nowIso),
    billing: { ...initialBillingState, subscribed: true, plan: 'starter', ...billing },
    remindersDone: {}, expiryBackupsDone: {}, nextPeriodicBackupAtMs: null, retryAtMs: null, dataKeptUntilMs: null, ...extra,
  };
}

describe('reminders and expiry backups', () => {
  const end = '2028-03-01T00:00:00.000Z';
  it('schedules the 7-day reminder first when canceling well before the end (UTC, across a leap day)', () => {
    const next = nextDeadline(input({ periodEndsAt: end, cancelAtPeriodEnd: true }, '2028-02-01T12:00:00.000Z'));
    expect(next).toEqual({ atMs: ms('2028-02-23T00:00:00.000Z'), action: { kind: 'reminder', daysLeft: 7, periodEnd: end } });
  });
  it('counts the leap day: 1 day before 1 March 2028 is 29 February', () => {
    const all = deadlines(input({ periodEndsAt: end, cancelAtPeriodEnd: true }, '2028-02-27T00:00:00.000Z', { remindersDone: { [end]: [7, 3] }, expiryBackupsDone: { [end]: [3] } }));
    expect(all.map((d) => [toIso(d.atMs), d.action.kind])).toEqual([
      ['2028-02-29T00:00:00.000Z', 'expiry_backup'],
      ['2028-02-29T00:00:00.000Z', 'reminder'],
      ['2028-03-01T00:00:00.000Z', 'final_backup_and_delete'],
    ]);
  });
  it('and in a common year 1 day before 1 March is 28 February', () => {
    const next = nextDeadline(input({ periodEndsAt: '2027-03-01T00:00:00.000Z', cancelAtPeriodEnd: true }, '2027-02-27T00:00:00.000Z', { remindersDone: { '2027-03-01T00:00:00.000Z': [7, 3] }, expiryBackupsDone: { '2027-03-01T00:00:00.000Z': [3] } }));
    expect(toIso(next!.atMs)).toBe('2027-02-28T00:00:00.000Z');
  });
  it('after an outage with 7 and 3 both missed, only the latest due reminder (3 days) is sent', () => {
    expect(dueOffset(ms(end), [7, 3, 1], day, ms('2028-02-27T06:00:00.000Z'), [])).toBe(3);
    expect(dueOffset(ms(end), [7, 3, 1], day, ms('2028-02-27T06:00:00.000Z'), [3])).toBeNull();
    // Once the 3-day one went out, the missed 7-day one never does.
    expect(dueOffset(ms(end), [7], day, ms('2028-02-27T06:00:00.000Z'), [3])).toBeNull();
  });
  it('sends each reminder once: done offsets are not due again', () => {
    expect(dueOffset(ms(end), [7, 3, 1], day, ms('2028-02-23T00:00:00.000Z'), [])).toBe(7);
    expect(dueOffset(ms(end), [7, 3, 1], day, ms('2028-02-24T00:00:00.000Z'), [7])).toBeNull();
  });
  it('period end already past: no reminder or expiry backup, the final step is due at once', () => {
    const due = dueDeadline(input({ periodEndsAt: end, cancelAtPeriodEnd: true }, '2028-03-05T00:00:00.000Z'));
    expect(due?.action).toEqual({ kind: 'final_backup_and_delete', periodEnd: end });
    expect(dueOffset(ms(end), [7, 3, 1], day, ms('2028-03-05T00:00:00.000Z'), [])).toBeNull();
  });
  it('an auto-renewing subscription has no reminder, backup or delete deadline', () => {
    expect(deadlines(input({ periodEndsAt: end }, '2028-02-28T00:00:00.000Z'))).toEqual([]);
  });
  it('at the same instant the expiry backup runs before the reminder', () => {
    const due = dueDeadline(input({ periodEndsAt: end, cancelAtPeriodEnd: true }, '2028-02-27T00:00:00.000Z', { remindersDone: { [end]: [7] } }));
    expect(due?.action.kind).toBe('expiry_backup');
  });
  it('a failing final backup waits for its retry time', () => {
    const retry = ms('2028-03-01T00:15:00.000Z');
    expect(dueDeadline(input({ periodEndsAt: end, cancelAtPeriodEnd: true }, '2028-03-01T00:10:00.000Z', { retryAtMs: retry }))).toBeNull();
    expect(finalBackupRetryDelayMs(1, config)).toBe(15 * 60_000);
    expect(finalBackupRetryDelayMs(2, config)).toBe(30 * 60_000);
    expect(finalBackupRetryDelayMs(20, config)).toBe(6 * 3_600_000);
  });
});

describe('billing state', () => {
  it('a failed payment gives access for the grace period from the first failure', () => {
    const billing: BillingState = { ...initialBillingState };
    applyBillingEvent(billing, { eventId: 'a', type: 'checkout_completed', created: '2026-01-01T00:00:00.000Z', accessEndsAt: '2026-02-01T00:00:00.000Z', plan: 'pro' });
    applyBillingEvent(billing, { eventId: 'b', type: 'payment_failed', created: '2026-02-01T01:00:00.000Z', accessEndsAt: '2026-03-01T00:00:00.000Z' });
    applyBillingEvent(billing, { eventId: 'c', type: 'payment_failed', created: '2026-02-04T01:00:00.000Z' });
    expect(toIso(accessEndsAtMs(billing, config)!)).toBe('2026-02-08T01:00:00.000Z');
    expect(deriveStage('serving', billing, config, ms('2026-02-02T00:00:00.000Z'), true)).toBe('past_due');
    applyBillingEvent(billing, { eventId: 'd', type: 'invoice_paid', created: '2026-02-05T00:00:00.000Z', accessEndsAt: '2026-03-01T00:00:00.000Z' });
    expect(toIso(accessEndsAtMs(billing, config)!)).toBe('2026-03-01T00:00:00.000Z');
    expect(deriveStage('serving', billing, config, ms('2026-02-05T00:00:00.000Z'), false)).toBe('idle');
  });
  it('a deleted subscription ends access at the earlier of paid-until and the deletion', () => {
    const billing: BillingState = { ...initialBillingState, subscribed: true, periodEndsAt: '2026-03-01T00:00:00.000Z' };
    applyBillingEvent(billing, { eventId: 'x', type: 'subscription_deleted', created: '2026-02-10T00:00:00.000Z' });
    expect(billing).toMatchObject({ periodEndsAt: '2026-02-10T00:00:00.000Z', cancelAtPeriodEnd: true });
  });
});

describe('periodic backups', () => {
  it('spread customers over the day and repeat at the same time of day', () => {
    const first = nextPeriodicBackupAt('customer-a', day, ms('2026-05-01T00:00:00.000Z'));
    expect(first % day).toBe(spreadHash('customer-a') % day);
    expect(nextPeriodicBackupAt('customer-a', day, first)).toBe(first + day);
    expect(spreadHash('customer-a') % day).not.toBe(spreadHash('customer-b') % day);
  });
});

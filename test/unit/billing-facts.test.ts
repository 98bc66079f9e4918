import { describe, expect, test } from 'vitest';
import { recordBillingEvent } from '../../workflows/billing-facts.ts';
import {
  accessEndsAtMs, applyBillingEvent, defaultLifecycleConfig, deriveStage, hasAccess, initialBillingState, toMs, willRenew, type BillingState,
} from '../../workflows/deadlines.ts';
import type { BillingEvent, SubscriptionStatus } from '../../workflows/messages.ts';

// Billing facts are merged one by one, each by its own clock: whatever order Stripe delivers a
// story in, the workflow reaches one state; and access starts only when money arrives.

const config = defaultLifecycleConfig;
const day = 86_400_000;
const T0 = Date.UTC(2026, 0, 1);
const R = T0 + 30 * day; // the renewal
const M = 30 * day;
const iso = (ms: number) => new Date(ms).toISOString();
const ev = (eventId: string, type: BillingEvent['type'], atMs: number, fields: Omit<BillingEvent, 'eventId' | 'type' | 'created'> = {}): BillingEvent =>
  ({ eventId, type, created: iso(atMs), ...fields });

function* permutations<T>(items: readonly T[]): Generator<T[]> {
  if (items.length <= 1) {
    yield [...items];
    return;
  }
  for (let i = 0; i < items.length; i++) {
    const rest = [...items.slice(0, i), ...items.slice(i + 1)];
    for (const tail of permutations(rest)) yield [items[i]!, ...tail];
  }
}

function fold(events: readonly BillingEvent[]): BillingState {
  const billing: BillingState = { ...initialBillingState };
  for (const event of events) recordBillingEvent(billing, event);
  return billing;
}

/** Every order of `events` reaches one state (facts included); returns it. */
function oneFinalState(events: readonly BillingEvent[]): BillingState {
  let first: BillingState | null = null;
  let firstJson = '';
  let orders = 0;
  for (const order of permutations(events)) {
    const state = fold(order);
    const json = JSON.stringify(state);
    if (first === null) [first, firstJson] = [state, json];
    // Compared as JSON (key order is the reducer's, the same for every order): fast over thousands.
    else if (json !== firstJson) expect(state, `order ${order.map((e) => e.eventId).join(' ')}`).toEqual(first);
    orders += 1;
  }
  expect(orders).toBe([...Array(events.length).keys()].reduce((n, i) => n * (i + 1), 1));
  return first!;
}

/** A customer who paid by card at T0 for the month to R, as Stripe reports it. */
const paidStart = [
  ev('checkout', 'checkout_completed', T0, { plan: 'pro', paid: true }),
  ev('sub_created', 'subscription_updated', T0, { subscriptionStatus: 'active', accessEndsAt: iso(R), plan: 'pro', cancelAtPeriodEnd: false }),
  ev('paid_1', 'invoice_paid', T0, { accessEndsAt: iso(R), plan: 'pro' }),
];
/** The renewal at R fails: the invoice's failure (R) and the subscription going past_due one second later. */
const renewalFails = [
  ev('failed_2', 'payment_failed', R, { accessEndsAt: iso(R), plan: 'pro' }),
  ev('past_due', 'subscription_updated', R + 1000, { subscriptionStatus: 'past_due', accessEndsAt: iso(R + M), plan: 'pro', cancelAtPeriodEnd: false }),
];

describe('a renewal whose payment fails, in every delivery order', () => {
  test('all 120 orders: payment failing since R, grace to R + 7 days, past due, no renewal', () => {
    const state = oneFinalState([...paidStart, ...renewalFails]);
    expect(state).toMatchObject({ subscribed: true, plan: 'pro', periodEndsAt: iso(R + M), cancelAtPeriodEnd: false, paymentFailedAt: iso(R) });
    expect(accessEndsAtMs(state, config)).toBe(R + 7 * day);
    expect(willRenew(state)).toBe(false);
    expect(deriveStage('serving', state, config, R + day, true)).toBe('past_due');
  });

  test('the reported order (past_due first) applies the older failure instead of dropping it as stale', () => {
    const billing = fold(paidStart);
    recordBillingEvent(billing, renewalFails[1]!);
    expect(recordBillingEvent(billing, renewalFails[0]!).applied).toContain('payment state');
    expect(billing.paymentFailedAt).toBe(iso(R));
  });

  test('then recovered: all 5040 orders end paid to R + M, renewing, no failure', () => {
    const state = oneFinalState([...paidStart, ...renewalFails,
      ev('paid_2', 'invoice_paid', R + 2 * day, { accessEndsAt: iso(R + M), plan: 'pro' }),
      ev('active_again', 'subscription_updated', R + 2 * day + 1000, { subscriptionStatus: 'active', accessEndsAt: iso(R + M), plan: 'pro', cancelAtPeriodEnd: false }),
    ]);
    expect(state).toMatchObject({ subscribed: true, periodEndsAt: iso(R + M), paymentFailedAt: null, cancelAtPeriodEnd: false });
    expect(hasAccess(state, config, R + 3 * day)).toBe(true);
    expect(willRenew(state)).toBe(true);
  });

  test('or never recovered, and Stripe cancels after its retries: all 5040 orders end with access at R, what was paid for', () => {
    const state = oneFinalState([...paidStart, ...renewalFails,
      ev('failed_3', 'payment_failed', R + 3 * day, { accessEndsAt: iso(R) }),
      ev('deleted', 'subscription_deleted', R + 14 * day, { subscriptionStatus: 'canceled', accessEndsAt: iso(R + 14 * day), cancelAtPeriodEnd: false }),
    ]);
    expect(state).toMatchObject({ periodEndsAt: iso(R), cancelAtPeriodEnd: true, paymentFailedAt: null, subscribed: false });
    expect(hasAccess(state, config, R + 14 * day)).toBe(false);
  });

  test('within one second (Stripe\'s clock), a failed renewal after a payment fails, and its recovery recovers', () => {
    const second = R;
    const renewedThenFailed = oneFinalState([...paidStart,
      ev('paid_2', 'invoice_paid', second, { accessEndsAt: iso(R) }),
      ev('active_2', 'subscription_updated', second, { subscriptionStatus: 'active', accessEndsAt: iso(R) }),
      ev('failed_3', 'payment_failed', second, { accessEndsAt: iso(R) }),
      ev('past_due_3', 'subscription_updated', second, { subscriptionStatus: 'past_due', accessEndsAt: iso(R + M) }),
    ]);
    expect(renewedThenFailed.paymentFailedAt).toBe(iso(second));
    const failedThenRecovered = oneFinalState([...paidStart, ...renewalFails.map((e) => ({ ...e, created: iso(second) })),
      ev('paid_2', 'invoice_paid', second, { accessEndsAt: iso(R + M) }),
      ev('active_2', 'subscription_updated', second, { subscriptionStatus: 'active', accessEndsAt: iso(R + M) }),
    ]);
    expect(failedThenRecovered.paymentFailedAt).toBeNull();
  });

  test('within one second, a payment and the subscription\'s deletion: the deletion ends access', () => {
    const state = oneFinalState([...paidStart,
      ev('paid_2', 'invoice_paid', R, { accessEndsAt: iso(R + M) }),
      ev('cancel', 'subscription_updated', R, { subscriptionStatus: 'active', cancelAtPeriodEnd: true, accessEndsAt: iso(R + M) }),
      ev('deleted', 'subscription_deleted', R, { subscriptionStatus: 'canceled', accessEndsAt: iso(R) }),
    ]);
    expect(state).toMatchObject({ periodEndsAt: iso(R), cancelAtPeriodEnd: true, subscribed: false });
  });

  test('the old single clock does reach different states (why facts are ordered one by one)', () => {
    const oldFold = (events: readonly BillingEvent[]) => {
      const billing: BillingState = { ...initialBillingState };
      let last: string | null = null;
      for (const e of events) {
        if (last !== null && toMs(e.created) < toMs(last)) continue;
        last = e.created;
        applyBillingEvent(billing, e);
      }
      return billing;
    };
    expect(oldFold([...paidStart, renewalFails[1]!, renewalFails[0]!]).paymentFailedAt).toBeNull();
    expect(oldFold([...paidStart, ...renewalFails]).paymentFailedAt).toBe(iso(R));
  });
});

describe('access starts only on money (delayed payment methods)', () => {
  const T = T0;
  const pending = [
    ev('checkout_unpaid', 'checkout_completed', T, { plan: 'starter', paid: false }),
    ev('sub_incomplete', 'subscription_updated', T, { subscriptionStatus: 'incomplete', accessEndsAt: iso(T + M), plan: 'starter', cancelAtPeriodEnd: false }),
  ];
  const money = new Set(['async_succeeded', 'paid_1']);

  test('SEPA that pays after 3 days: in no order is there access before the money; at the end, access to the period end', () => {
    const events = [...pending,
      ev('async_succeeded', 'checkout_completed', T + 3 * day, { plan: 'starter', paid: true }),
      ev('paid_1', 'invoice_paid', T + 3 * day, { accessEndsAt: iso(T + M), plan: 'starter' }),
      ev('active', 'subscription_updated', T + 3 * day + 1000, { subscriptionStatus: 'active', accessEndsAt: iso(T + M), plan: 'starter', cancelAtPeriodEnd: false }),
    ];
    for (const order of permutations(events)) {
      const billing: BillingState = { ...initialBillingState };
      let paid = false;
      for (const event of order) {
        recordBillingEvent(billing, event);
        paid ||= money.has(event.eventId);
        if (!paid) expect(hasAccess(billing, config, T + 3 * day + 3_600_000), `after ${event.eventId} in ${order.map((e) => e.eventId).join(' ')}`).toBe(false);
      }
      expect(hasAccess(billing, config, T + 3 * day + 3_600_000)).toBe(true);
    }
    expect(oneFinalState(events)).toMatchObject({ subscribed: true, periodEndsAt: iso(T + M), paymentFailedAt: null, plan: 'starter' });
  });

  test('SEPA that fails: no access in any order, at any point', () => {
    const events = [...pending,
      ev('async_failed', 'payment_failed', T + 3 * day, { plan: 'starter' }),
      ev('invoice_failed', 'payment_failed', T + 3 * day, { accessEndsAt: iso(T), plan: 'starter' }),
      ev('expired', 'subscription_updated', T + 4 * day, { subscriptionStatus: 'incomplete_expired', accessEndsAt: iso(T + M), plan: 'starter', cancelAtPeriodEnd: false }),
    ];
    for (const order of permutations(events)) {
      const billing: BillingState = { ...initialBillingState };
      for (const event of order) {
        recordBillingEvent(billing, event);
        expect(hasAccess(billing, config, T + 4 * day)).toBe(false);
        expect(hasAccess(billing, config, T + 1)).toBe(false);
      }
    }
  });

  test('a returning customer whose new checkout has not paid yet gets no access from the new period', () => {
    const ended = [...paidStart, ev('deleted', 'subscription_deleted', R, { subscriptionStatus: 'canceled', accessEndsAt: iso(R) })];
    const back = [
      ev('checkout_2', 'checkout_completed', R + 10 * day, { plan: 'pro', paid: false }),
      ev('sub_2', 'subscription_updated', R + 10 * day, { subscriptionStatus: 'incomplete', accessEndsAt: iso(R + 10 * day + M), cancelAtPeriodEnd: false }),
    ];
    const waiting = oneFinalState([...ended, ...back]);
    expect(hasAccess(waiting, config, R + 11 * day)).toBe(false);
    const paid = oneFinalState([...ended, ...back, ev('paid_2', 'invoice_paid', R + 12 * day, { accessEndsAt: iso(R + 10 * day + M) })]);
    expect(hasAccess(paid, config, R + 12 * day + 1)).toBe(true);
    expect(paid).toMatchObject({ periodEndsAt: iso(R + 10 * day + M), cancelAtPeriodEnd: false, paymentFailedAt: null });
  });

  test('a checkout without the paid field (events recorded before it existed) counts as paid, as before', () => {
    expect(hasAccess(fold([ev('c', 'checkout_completed', T, { accessEndsAt: iso(T + M), plan: 'starter' })]), config, T + 1)).toBe(true);
  });
});

describe('what each subscription status does to access (docs/decisions/014)', () => {
  const at = T0 + 10 * day;
  const now = at + 3_600_000;
  const statusEvent = (status: SubscriptionStatus) => ev(`status_${status}`, status === 'canceled' ? 'subscription_deleted' : 'subscription_updated', at,
    { subscriptionStatus: status, accessEndsAt: iso(status === 'canceled' ? at : R), cancelAtPeriodEnd: false });
  const view = (billing: BillingState) => ({
    access: hasAccess(billing, config, now),
    renews: willRenew(billing),
    accessEndsAt: iso(accessEndsAtMs(billing, config)!),
    stage: deriveStage('serving', billing, config, now, true),
  });

  // After a customer paid (checkout and first invoice), the subscription's newest status is:
  test.each<[SubscriptionStatus, ReturnType<typeof view>]>([
    ['active', { access: true, renews: true, accessEndsAt: iso(R), stage: 'active' }],
    ['trialing', { access: true, renews: true, accessEndsAt: iso(R), stage: 'active' }],
    // Says nothing about access (Stripe sends it only before the first payment): as before it.
    ['incomplete', { access: true, renews: true, accessEndsAt: iso(R), stage: 'active' }],
    ['past_due', { access: true, renews: false, accessEndsAt: iso(at + 7 * day), stage: 'past_due' }],
    ['unpaid', { access: true, renews: false, accessEndsAt: iso(at + 7 * day), stage: 'past_due' }],
    ['paused', { access: false, renews: false, accessEndsAt: iso(at), stage: 'expiring' }],
    ['canceled', { access: false, renews: false, accessEndsAt: iso(at), stage: 'expiring' }],
    ['incomplete_expired', { access: false, renews: false, accessEndsAt: iso(at), stage: 'expiring' }],
  ])('paid, then %s', (status, expected) => {
    expect(view(fold([...paidStart, statusEvent(status)]))).toEqual(expected);
  });

  // Before any money came (Checkout completed unpaid), no status gives access.
  test.each<SubscriptionStatus>(['active', 'trialing', 'incomplete', 'past_due', 'unpaid', 'paused', 'canceled', 'incomplete_expired'])('never paid, then %s: no access', (status) => {
    const billing = fold([ev('checkout', 'checkout_completed', T0, { plan: 'pro', paid: false }), statusEvent(status)]);
    expect(hasAccess(billing, config, now)).toBe(false);
  });

  test('paused, then resumed and paid: access again from the new payment', () => {
    const billing = fold([...paidStart, statusEvent('paused'),
      ev('resumed', 'subscription_updated', at + 5 * day, { subscriptionStatus: 'active', accessEndsAt: iso(at + 5 * day + M) }),
      ev('paid_resume', 'invoice_paid', at + 5 * day, { accessEndsAt: iso(at + 5 * day + M) })]);
    expect(hasAccess(billing, config, at + 5 * day + 1)).toBe(true);
    expect(willRenew(billing)).toBe(true);
  });
});

describe('events without the new fields behave as before, delivered in order', () => {
  // The stories of the recorded histories and workflow tests: old-shape events, in created order.
  const stories: Record<string, BillingEvent[]> = {
    'new customer': [ev('a', 'checkout_completed', T0, { accessEndsAt: iso(R), plan: 'starter' })],
    'auto-renew': [ev('a', 'checkout_completed', T0, { accessEndsAt: iso(R), plan: 'pro' }), ev('b', 'invoice_paid', R - day, { accessEndsAt: iso(R + M) })],
    'cancel, expire, renew': [ev('a', 'checkout_completed', T0, { accessEndsAt: iso(R), plan: 'starter' }), ev('b', 'subscription_updated', T0 + day, { cancelAtPeriodEnd: true }),
      ev('c', 'checkout_completed', R + day, { accessEndsAt: iso(R + day + M), cancelAtPeriodEnd: false })],
    'payment failed, recovered, failed': [ev('a', 'checkout_completed', T0, { accessEndsAt: iso(R), plan: 'starter' }), ev('b', 'payment_failed', T0 + day),
      ev('c', 'invoice_paid', T0 + 3 * day, { accessEndsAt: iso(R + M) }), ev('d', 'payment_failed', T0 + 4 * day)],
    'failed with period, recovered': [ev('a', 'checkout_completed', T0, { accessEndsAt: iso(R), plan: 'starter' }), ev('b', 'payment_failed', R, { accessEndsAt: iso(R + M) }),
      ev('c', 'invoice_paid', R + 2 * day, { accessEndsAt: iso(R + M) })],
  };
  test.each(Object.entries(stories))('%s', (_name, events) => {
    const before: BillingState = { ...initialBillingState };
    for (const e of events) applyBillingEvent(before, e);
    const { facts: _facts, ...after } = fold(events);
    expect(after).toEqual(before);
  });
});

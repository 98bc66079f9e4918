import type Stripe from 'stripe';
import { describe, expect, test } from 'vitest';
import { judgeWebhookEndpoints, stripeApiVersionVerdict, type EndpointListing } from '../../activities/billing/api-versions.ts';
import { normalizeStripeEvent, type NormalizeResult } from '../../activities/billing/normalize.ts';
import { createPlans, localPriceIds } from '../../activities/billing/plans.ts';
import { stripeApiVersion } from '../../activities/billing/stripe-client.ts';
import { buildCheckoutSession, buildEvent, buildInvoice, buildSubscription, type LocalSubscription } from '../../api/local-billing/stripe-objects.ts';
import { inLegacyVersion, inVersion, legacyVersion, supportedVersionSamples } from '../support/stripe-versions.ts';

// Which Stripe API versions Berth reads, and what happens to an event of any other: it is refused
// with a reason, never half-read and never thrown (the endpoint would answer 500 for three days).

const plans = createPlans();
const userId = '3f1c2b9e-8a7d-4c6b-9e5f-0a1b2c3d4e5f';
const t0 = Date.UTC(2026, 0, 15) / 1000;
const month = 30 * 86400;
const iso = (s: number) => new Date(s * 1000).toISOString();

const sub: LocalSubscription = {
  userId, email: 'ada@example.com', plan: 'pro', priceId: localPriceIds.pro, productId: 'prod_pro', amountMinor: 1900, currency: 'eur',
  customerId: 'cus_A', subscriptionId: 'sub_A', itemId: 'si_A', status: 'active', created: t0, periodStart: t0 + month, periodEnd: t0 + 2 * month,
  cancelAtPeriodEnd: false, canceledAt: null, endedAt: null, latestInvoiceId: 'in_2',
};
const invoice = (status: 'open' | 'paid') => buildInvoice(sub, {
  id: 'in_2', status, billingReason: 'subscription_cycle', periodStart: t0 + month, periodEnd: t0 + 2 * month, attemptCount: 1, created: t0 + month, nextPaymentAttempt: null,
}, 'https://app.example');

/** One event of each type Berth acts on, with what it must normalize to in every supported version. */
const cases: { event: Stripe.Event; expected: Record<string, unknown> }[] = [
  {
    event: buildEvent('checkout.session.completed', buildCheckoutSession(sub, { sessionId: 'cs_1', created: t0, successUrl: 's', cancelUrl: 'c', invoiceId: 'in_1' }), { id: 'evt_c', created: t0 }),
    expected: { type: 'checkout.completed', paid: true, plan: 'pro', stripeSubscriptionId: 'sub_A' },
  },
  {
    event: buildEvent('customer.subscription.updated', buildSubscription({ ...sub, status: 'past_due' }), { id: 'evt_s', created: t0 + month + 1 }),
    expected: { type: 'subscription.updated', accessEndsAt: iso(t0 + 2 * month), plan: 'pro', subscriptionStatus: 'past_due', cancelAtPeriodEnd: false },
  },
  {
    event: buildEvent('customer.subscription.deleted', buildSubscription({ ...sub, status: 'canceled', endedAt: t0 + month + 9, canceledAt: t0 + month + 9 }), { id: 'evt_d', created: t0 + month + 9 }),
    expected: { type: 'subscription.deleted', accessEndsAt: iso(t0 + month + 9), subscriptionStatus: 'canceled' },
  },
  { event: buildEvent('invoice.paid', invoice('paid'), { id: 'evt_p', created: t0 + month }), expected: { type: 'payment.succeeded', accessEndsAt: iso(t0 + 2 * month), plan: 'pro', stripeInvoiceId: 'in_2' } },
  { event: buildEvent('invoice.payment_failed', invoice('open'), { id: 'evt_f', created: t0 + month }), expected: { type: 'payment.failed', accessEndsAt: iso(t0 + month), plan: 'pro' } },
];

function outcomeOf(event: unknown): NormalizeResult {
  let result: NormalizeResult | undefined;
  expect(() => { result = normalizeStripeEvent(event, plans); }).not.toThrow();
  return result!;
}

describe('the API versions Berth reads', () => {
  test.each([...supportedVersionSamples, '2025-08-27.basil', '2026-01-28.clover'])('%s is supported', (version) => {
    expect(stripeApiVersionVerdict(version)).toEqual({ supported: true });
  });

  test.each([
    [legacyVersion, /older than 2025-03-31\.basil/],
    ['2024-09-30.acacia', /older than/],
    ['2025-02-24.acacia', /older than/],
    ['2025-03-01.dashboard', /older than/],
    ['2025-06-30.dashboard', /release Berth was not checked against/],
    ['2027-03-31.fig', /release Berth was not checked against/],
    ['2026-05-01.preview', /release Berth was not checked against/],
    ['latest', /not a released version/],
    [null, /names no API version/],
  ])('%s is refused with a reason', (version, reason) => {
    const verdict = stripeApiVersionVerdict(version);
    expect(verdict.supported).toBe(false);
    expect(!verdict.supported && verdict.reason).toMatch(reason);
  });

  test('the version the stripe package pins is one of them', () => {
    expect(stripeApiVersionVerdict(stripeApiVersion).supported).toBe(true);
  });
});

describe.each(supportedVersionSamples)('events rendered in %s', (version) => {
  test.each(cases.map((c) => [c.event.type, c]))('%s normalizes', (_type, { event, expected }) => {
    const result = outcomeOf(inVersion(event, version));
    expect(result.outcome).toBe('normalized');
    expect(result.outcome === 'normalized' && result.event).toMatchObject(expected);
    expect(result.outcome === 'normalized' && result.userId).toBe(userId);
  });
});

describe(`events rendered in ${legacyVersion} (an endpoint created before basil)`, () => {
  test('the shapes really are the old ones: period on the subscription, invoice.subscription at the top, line prices', () => {
    const subscription = inLegacyVersion(cases[1]!.event).data.object as unknown as Record<string, unknown> & { items: { data: Record<string, unknown>[] } };
    expect(subscription.current_period_end).toBe(t0 + 2 * month);
    expect(subscription.items.data[0]).not.toHaveProperty('current_period_end');
    const legacyInvoice = inLegacyVersion(cases[3]!.event).data.object as unknown as Record<string, unknown> & { lines: { data: Record<string, unknown>[] } };
    expect(legacyInvoice.subscription).toBe('sub_A');
    expect(legacyInvoice).not.toHaveProperty('parent');
    expect(legacyInvoice.lines.data[0]).toMatchObject({ type: 'subscription', price: { id: localPriceIds.pro } });
  });

  test.each(cases.map((c) => [c.event.type, c]))('%s is refused, not thrown, naming the version', (_type, { event }) => {
    const result = outcomeOf(inLegacyVersion(event));
    expect(result).toEqual({ outcome: 'refused', reason: expect.stringContaining(legacyVersion) });
  });

  test('the reported case, mislabelled as a supported version, is refused by its shape: the item period it lacks', () => {
    const legacy = inLegacyVersion(cases[1]!.event);
    const result = outcomeOf({ ...legacy, api_version: stripeApiVersion });
    expect(result.outcome).toBe('refused');
    expect(result.outcome === 'refused' && result.reason).toMatch(/items\.data\.0\.current_period_end/);
  });
});

describe('payloads that are not what they claim are refused, never thrown', () => {
  const subscription = buildSubscription(sub);
  test.each([
    ['null', null],
    ['a string', 'evt_1'],
    ['an empty object', {}],
    ['created as text', { ...cases[1]!.event, created: '2026-01-15' }],
    ['created beyond a Date', { ...cases[1]!.event, created: 1e15 }],
    ['no data.object', { ...cases[1]!.event, data: {} }],
    ['an unknown subscription status', buildEvent('customer.subscription.updated', { ...subscription, status: 'frozen' as Stripe.Subscription.Status }, { created: t0 })],
    ['no subscription items', buildEvent('customer.subscription.updated', { ...subscription, items: { ...subscription.items, data: [] } }, { created: t0 })],
    ['an item period of null', buildEvent('customer.subscription.updated', { ...subscription, items: { ...subscription.items, data: [{ ...subscription.items.data[0]!, current_period_end: null as unknown as number }] } }, { created: t0 })],
    ['an unknown Checkout payment status', buildEvent('checkout.session.completed', { ...buildCheckoutSession(sub, { sessionId: 'cs', created: t0, successUrl: 's', cancelUrl: 'c', invoiceId: 'in' }), payment_status: 'pending' as 'paid' }, { created: t0 })],
  ])('%s', (_what, payload) => {
    expect(outcomeOf(payload).outcome).toBe('refused');
  });

  test('an unhandled type is ignored whatever its version', () => {
    expect(outcomeOf(inLegacyVersion(buildEvent('customer.subscription.trial_will_end', subscription, { created: t0 })))).toEqual({ outcome: 'ignored' });
  });
});

describe('the start-up check of the account\'s webhook endpoints', () => {
  const url = 'https://berth.example/webhooks/stripe';
  const endpoint = (over: Partial<EndpointListing>): EndpointListing => ({ id: 'we_1', url, status: 'enabled', api_version: stripeApiVersion, ...over });

  test('an endpoint on a supported version passes', () => {
    expect(judgeWebhookEndpoints([endpoint({}), endpoint({ id: 'we_other', url: 'https://elsewhere.example/hook', api_version: legacyVersion })], url, null))
      .toEqual({ endpoints: [{ id: 'we_1', apiVersion: stripeApiVersion, effectiveVersion: stripeApiVersion }], problems: [], warnings: [] });
  });

  test('an endpoint of this app on an unsupported version is a problem that names it and the fix', () => {
    const check = judgeWebhookEndpoints([endpoint({ api_version: legacyVersion })], `${url}/`, null);
    expect(check.problems).toHaveLength(1);
    expect(check.problems[0]).toMatch(new RegExp(`we_1.*${legacyVersion}.*Set the endpoint's API version to ${stripeApiVersion}`));
  });

  test("an endpoint without its own version is judged by the account's default, taken from a recent event", () => {
    expect(judgeWebhookEndpoints([endpoint({ api_version: null })], url, '2024-09-30.acacia').problems[0]).toMatch(/account's default version 2024-09-30\.acacia/);
    expect(judgeWebhookEndpoints([endpoint({ api_version: null })], url, '2025-09-30.clover').problems).toEqual([]);
    expect(judgeWebhookEndpoints([endpoint({ api_version: null })], url, null).warnings[0]).toMatch(/not known yet: pin it/);
  });

  test('disabled endpoints do not count; none for this app is a warning', () => {
    const check = judgeWebhookEndpoints([endpoint({ status: 'disabled', api_version: legacyVersion })], url, null);
    expect(check.problems).toEqual([]);
    expect(check.warnings[0]).toMatch(/no enabled Stripe webhook endpoint delivers to/);
  });
});

import { describe, expect, test } from 'vitest';
import type Stripe from 'stripe';
import { normalizeStripeEvent, subscriptionAccessEnd, invoiceSnapshot, type NormalizedStripeEvent } from '../../activities/billing/normalize.ts';
import { invoiceShape } from '../../activities/billing/stripe-shapes.ts';
import { createPlans, localPriceIds } from '../../activities/billing/plans.ts';
import { buildCheckoutSession, buildEvent, buildInvoice, buildSubscription, stripeId, type LocalSubscription } from '../../api/local-billing/stripe-objects.ts';

// The normalizer reads Stripe's current shapes (basil+): period ends on subscription items, an
// invoice's subscription under parent.subscription_details, user id from our metadata.

const plans = createPlans();
const userId = '3f1c2b9e-8a7d-4c6b-9e5f-0a1b2c3d4e5f';
const t0 = Date.UTC(2026, 0, 15) / 1000;
const month = 31 * 86400;

function subscription(over: Partial<LocalSubscription> = {}): LocalSubscription {
  return {
    userId, email: 'ada@example.com', plan: 'pro', priceId: localPriceIds.pro, productId: 'prod_x', amountMinor: 1900, currency: 'eur',
    customerId: 'cus_A', subscriptionId: 'sub_A', itemId: 'si_A', status: 'active', created: t0, periodStart: t0, periodEnd: t0 + month,
    cancelAtPeriodEnd: false, canceledAt: null, endedAt: null, latestInvoiceId: null, ...over,
  };
}
const iso = (s: number) => new Date(s * 1000).toISOString();

/** The normalized event, failing the test if the event was ignored or refused. */
function normalized(event: Stripe.Event): NormalizedStripeEvent {
  const result = normalizeStripeEvent(event, plans);
  if (result.outcome !== 'normalized') throw new Error(`expected a normalized event, got ${JSON.stringify(result)}`);
  const { outcome: _outcome, ...rest } = result;
  return rest;
}

describe('normalizeStripeEvent', () => {
  test('checkout.session.completed: user from client_reference_id, plan from metadata, ids linked', () => {
    const session = buildCheckoutSession(subscription(), { sessionId: 'cs_1', created: t0, successUrl: 'http://x/s', cancelUrl: 'http://x/c', invoiceId: 'in_1' });
    const out = normalized(buildEvent('checkout.session.completed', session, { id: 'evt_1', created: t0 }));
    expect(out).toEqual({
      userId,
      invoice: null,
      event: { eventId: 'evt_1', type: 'checkout.completed', created: iso(t0), accessEndsAt: null, plan: 'pro', cancelAtPeriodEnd: null, subscriptionStatus: null, paid: true, stripeCustomerId: 'cus_A', stripeSubscriptionId: 'sub_A', stripeInvoiceId: 'in_1' },
    });
  });

  test('a payment-mode Checkout Session is not a subscription and is ignored', () => {
    const session = { ...buildCheckoutSession(subscription(), { sessionId: 'cs_2', created: t0, successUrl: 's', cancelUrl: 'c', invoiceId: 'in_1' }), mode: 'payment' as const };
    expect(normalizeStripeEvent(buildEvent('checkout.session.completed', session, { created: t0 }), plans)).toEqual({ outcome: 'ignored' });
  });

  test('customer.subscription.updated: access end from the item period, plan from the price, cancel at period end', () => {
    const sub = buildSubscription(subscription({ cancelAtPeriodEnd: true }));
    const out = normalized(buildEvent('customer.subscription.updated', sub, { id: 'evt_2', created: t0 + 5 }));
    expect(out.userId).toBe(userId);
    expect(out.event).toMatchObject({ type: 'subscription.updated', accessEndsAt: iso(t0 + month), plan: 'pro', cancelAtPeriodEnd: true, subscriptionStatus: 'active', stripeSubscriptionId: 'sub_A' });
  });

  test('the plan follows the price id, not stale metadata (a plan change in the portal)', () => {
    const sub = buildSubscription(subscription({ plan: 'starter', priceId: localPriceIds.enterprise }));
    expect(normalized(buildEvent('customer.subscription.updated', sub, { created: t0 })).event.plan).toBe('enterprise');
  });

  test('customer.subscription.deleted: access ends when the subscription ended', () => {
    const sub = buildSubscription(subscription({ status: 'canceled', endedAt: t0 + 100, canceledAt: t0 + 100 }));
    const out = normalized(buildEvent('customer.subscription.deleted', sub, { created: t0 + 100 }));
    expect(out.event).toMatchObject({ type: 'subscription.deleted', accessEndsAt: iso(t0 + 100), subscriptionStatus: 'canceled' });
  });

  test('a subscription without an item period is not read from the subscription (basil removed it there)', () => {
    const sub = buildSubscription(subscription());
    expect('current_period_end' in sub).toBe(false);
    expect(subscriptionAccessEnd(sub)).toBe(t0 + month);
  });

  test('cancel_at earlier than the period end wins', () => {
    const sub = { ...buildSubscription(subscription()), cancel_at: t0 + 10 * 86400 };
    expect(subscriptionAccessEnd(sub)).toBe(t0 + 10 * 86400);
  });

  test('invoice.paid: subscription from parent.subscription_details, access to the billed period end, invoice snapshot', () => {
    const invoice = buildInvoice(subscription(), { id: 'in_2', status: 'paid', billingReason: 'subscription_cycle', periodStart: t0 + month, periodEnd: t0 + 2 * month, attemptCount: 1, created: t0 + month, nextPaymentAttempt: null }, 'http://app');
    const out = normalized(buildEvent('invoice.paid', invoice, { id: 'evt_3', created: t0 + month }));
    expect(out.userId).toBe(userId);
    expect(out.event).toMatchObject({ type: 'payment.succeeded', accessEndsAt: iso(t0 + 2 * month), plan: 'pro', stripeSubscriptionId: 'sub_A', stripeInvoiceId: 'in_2', stripeCustomerId: 'cus_A' });
    expect(out.invoice).toEqual({
      stripeInvoiceId: 'in_2', stripeSubscriptionId: 'sub_A', stripeCustomerId: 'cus_A', amountMinor: 1900, currency: 'eur', status: 'paid',
      periodStart: new Date((t0 + month) * 1000), periodEnd: new Date((t0 + 2 * month) * 1000), hostedInvoiceUrl: 'http://app/local-billing/invoices/in_2', created: new Date((t0 + month) * 1000),
    });
    expect(Number.isInteger(out.invoice!.amountMinor)).toBe(true);
  });

  test('invoice.payment_failed: access only to the start of the unpaid period', () => {
    const invoice = buildInvoice(subscription(), { id: 'in_3', status: 'open', billingReason: 'subscription_cycle', periodStart: t0 + month, periodEnd: t0 + 2 * month, attemptCount: 1, created: t0 + month, nextPaymentAttempt: t0 + month + 3 * 86400 }, 'http://app');
    const out = normalized(buildEvent('invoice.payment_failed', invoice, { created: t0 + month }));
    expect(out.event).toMatchObject({ type: 'payment.failed', accessEndsAt: iso(t0 + month) });
    expect(out.invoice!.status).toBe('open');
  });

  test('invoice.payment_action_required normalizes like a failure that awaits the customer', () => {
    const invoice = buildInvoice(subscription(), { id: 'in_4', status: 'open', billingReason: 'subscription_cycle', periodStart: t0 + month, periodEnd: t0 + 2 * month, attemptCount: 1, created: t0 + month, nextPaymentAttempt: null }, 'http://app');
    expect(normalized(buildEvent('invoice.payment_action_required', invoice, { created: t0 })).event.type).toBe('payment.action_required');
  });

  test('an invoice without our metadata has no user id (the webhook looks the customer up instead)', () => {
    const invoice = buildInvoice(subscription(), { id: 'in_5', status: 'paid', billingReason: 'subscription_create', periodStart: t0, periodEnd: t0 + month, attemptCount: 1, created: t0, nextPaymentAttempt: null }, 'http://app');
    invoice.parent!.subscription_details!.metadata = {};
    expect(normalized(buildEvent('invoice.paid', invoice, { created: t0 })).userId).toBeNull();
  });

  test('a subscription invoice records the billed period, not Stripe\'s previous-period period_start/end', () => {
    const invoice = buildInvoice(subscription(), { id: 'in_6', status: 'paid', billingReason: 'subscription_cycle', periodStart: t0 + month, periodEnd: t0 + 2 * month, attemptCount: 1, created: t0 + month, nextPaymentAttempt: null }, 'http://app');
    expect(invoice.period_end).toBe(t0 + month);
    expect(invoiceSnapshot(invoiceShape.parse(invoice)).periodEnd).toEqual(new Date((t0 + 2 * month) * 1000));
  });

  test('types Berth does not act on normalize to null', () => {
    const sub = buildSubscription(subscription());
    expect(normalizeStripeEvent(buildEvent('customer.subscription.paused', sub, { created: t0 }), plans)).toEqual({ outcome: 'ignored' });
  });

  test('stripeId looks like Stripe ids', () => {
    expect(stripeId('evt')).toMatch(/^evt_[A-Za-z0-9]{24}$/);
  });
});

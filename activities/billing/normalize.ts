import type Stripe from 'stripe';
import type { z } from 'zod';
import type { Plan } from '../../db/database.ts';
import { stripeApiVersionVerdict } from './api-versions.ts';
import type { BillingEvent, BillingEventType } from './billing-event.ts';
import { isPlan, planForPriceId, type Plans } from './plans.ts';
import {
  checkoutSessionShape, describeShapeError, eventEnvelopeShape, invoiceShape, subscriptionShape,
  type InvoiceShape, type SubscriptionShape,
} from './stripe-shapes.ts';
import { errorMessage } from '../../lib/errors.ts';

/** The Stripe event types Berth acts on; every other type is acknowledged and ignored. */
export const handledStripeEventTypes = [
  'checkout.session.completed',
  'checkout.session.async_payment_succeeded',
  'checkout.session.async_payment_failed',
  'customer.subscription.created',
  'customer.subscription.updated',
  'customer.subscription.deleted',
  'invoice.paid',
  'invoice.payment_failed',
  'invoice.payment_action_required',
] as const satisfies readonly Stripe.Event.Type[];
export type HandledStripeEventType = (typeof handledStripeEventTypes)[number];

export function isHandledStripeEventType(type: string): type is HandledStripeEventType {
  return (handledStripeEventTypes as readonly string[]).includes(type);
}

/** Metadata key holding Berth's user id on Checkout Sessions, subscriptions and customers. */
export const userIdMetadataKey = 'user_id';
/** Metadata key holding the plan on Checkout Sessions and subscriptions. */
export const planMetadataKey = 'plan';

/** A normalized event plus what it says about whose it is; the webhook resolves the user from this. */
export interface NormalizedStripeEvent {
  event: BillingEvent;
  /** Berth's user id when the event carries it (client_reference_id or metadata). */
  userId: string | null;
  /** The invoice to mirror into the invoices table, for invoice.* events. */
  invoice: InvoiceSnapshot | null;
}

/** The columns of the invoices table that a Stripe invoice fills. */
export interface InvoiceSnapshot {
  stripeInvoiceId: string;
  stripeSubscriptionId: string | null;
  stripeCustomerId: string | null;
  amountMinor: number;
  currency: string;
  status: 'draft' | 'open' | 'paid' | 'uncollectible' | 'void';
  periodStart: Date | null;
  periodEnd: Date | null;
  hostedInvoiceUrl: string | null;
  created: Date;
}

/**
 * What Berth makes of one Stripe event:
 * - ignored: a type Berth does not act on (or a Checkout Session that is no subscription);
 * - refused: a type Berth acts on, in an API version or shape it does not read; `reason` says why,
 *   for the operator who must look at it (docs/decisions/013-stripe-api-versions.md);
 * - normalized: Berth's billing event, with the user and invoice it names.
 */
export type NormalizeResult =
  | { outcome: 'ignored' }
  | { outcome: 'refused'; reason: string }
  | ({ outcome: 'normalized' } & NormalizedStripeEvent);

/**
 * Turns a Stripe event (a verified webhook body or an event listed from the API) into Berth's
 * billing event. Pure (no I/O) and total: whatever the payload, it answers one of the three
 * outcomes above and never throws.
 */
export function normalizeStripeEvent(raw: unknown, plans: Plans): NormalizeResult {
  try {
    return normalize(raw, plans);
  } catch (err) {
    // A defect of ours, not of the event: still an answer, so the event is flagged, not retried forever.
    return { outcome: 'refused', reason: `the normalizer failed: ${errorMessage(err)}` };
  }
}

function normalize(raw: unknown, plans: Plans): NormalizeResult {
  const envelope = eventEnvelopeShape.safeParse(raw);
  if (!envelope.success) return { outcome: 'refused', reason: `not a Stripe event: ${describeShapeError(envelope.error)}` };
  const event = envelope.data;
  if (!isHandledStripeEventType(event.type)) return { outcome: 'ignored' };
  const version = stripeApiVersionVerdict(event.api_version);
  if (!version.supported) return { outcome: 'refused', reason: version.reason };

  const base = { eventId: event.id, created: isoFromUnix(event.created) };
  const object = event.data.object;
  const refuse = (error: z.ZodError): NormalizeResult => ({ outcome: 'refused', reason: `${event.type} in ${event.api_version} has an unexpected shape: ${describeShapeError(error)}` });
  switch (event.type) {
    case 'checkout.session.completed':
    case 'checkout.session.async_payment_succeeded':
    case 'checkout.session.async_payment_failed': {
      if (object.mode !== 'subscription') return { outcome: 'ignored' };
      const parsed = checkoutSessionShape.safeParse(object);
      if (!parsed.success) return refuse(parsed.error);
      const session = parsed.data;
      const metadata = session.metadata ?? {};
      const type: BillingEventType = event.type === 'checkout.session.completed' ? 'checkout.completed'
        : event.type === 'checkout.session.async_payment_succeeded' ? 'checkout.payment_succeeded' : 'checkout.payment_failed';
      // Money came with the session only when Stripe says so: a delayed method (SEPA Direct Debit,
      // ...) completes the session `unpaid` and reports the outcome days later.
      const paid = type === 'checkout.payment_failed' ? false : session.payment_status === 'paid' || session.payment_status === 'no_payment_required';
      return {
        outcome: 'normalized',
        userId: session.client_reference_id ?? metadata[userIdMetadataKey] ?? null,
        invoice: null,
        event: {
          ...base,
          type,
          accessEndsAt: null,
          plan: planFromMetadata(metadata),
          cancelAtPeriodEnd: null,
          subscriptionStatus: null,
          paid,
          stripeCustomerId: idOf(session.customer),
          stripeSubscriptionId: idOf(session.subscription),
          stripeInvoiceId: idOf(session.invoice),
        },
      };
    }
    case 'customer.subscription.created':
    case 'customer.subscription.updated':
    case 'customer.subscription.deleted': {
      const parsed = subscriptionShape.safeParse(object);
      if (!parsed.success) return refuse(parsed.error);
      const subscription = parsed.data;
      const type: BillingEventType = event.type === 'customer.subscription.deleted' ? 'subscription.deleted' : 'subscription.updated';
      return {
        outcome: 'normalized',
        userId: subscription.metadata[userIdMetadataKey] ?? null,
        invoice: null,
        event: {
          ...base,
          type,
          accessEndsAt: isoOrNull(subscriptionAccessEnd(subscription)),
          plan: planOfSubscription(subscription, plans),
          cancelAtPeriodEnd: subscription.cancel_at_period_end || subscription.cancel_at !== null,
          subscriptionStatus: subscription.status,
          paid: null,
          stripeCustomerId: idOf(subscription.customer),
          stripeSubscriptionId: subscription.id,
          stripeInvoiceId: null,
        },
      };
    }
    case 'invoice.paid':
    case 'invoice.payment_failed':
    case 'invoice.payment_action_required': {
      const parsed = invoiceShape.safeParse(object);
      if (!parsed.success) return refuse(parsed.error);
      const invoice = parsed.data;
      const details = invoice.parent?.subscription_details ?? null;
      const periods = subscriptionLinePeriods(invoice);
      const type: BillingEventType =
        event.type === 'invoice.paid' ? 'payment.succeeded' : event.type === 'invoice.payment_failed' ? 'payment.failed' : 'payment.action_required';
      // Paid: access runs to the end of the billed period. Not paid: only to its start, which is
      // where the previously paid period ends.
      const accessEnds = periods.length === 0 ? null : type === 'payment.succeeded' ? Math.max(...periods.map((p) => p.end)) : Math.min(...periods.map((p) => p.start));
      return {
        outcome: 'normalized',
        userId: details?.metadata?.[userIdMetadataKey] ?? invoice.metadata?.[userIdMetadataKey] ?? null,
        invoice: invoiceSnapshot(invoice),
        event: {
          ...base,
          type,
          accessEndsAt: isoOrNull(accessEnds),
          plan: planOfInvoice(invoice, plans) ?? planFromMetadata(details?.metadata ?? {}),
          cancelAtPeriodEnd: null,
          subscriptionStatus: null,
          paid: null,
          stripeCustomerId: idOf(invoice.customer),
          stripeSubscriptionId: details ? idOf(details.subscription) : null,
          stripeInvoiceId: invoice.id,
        },
      };
    }
  }
}

/**
 * Until when a subscription gives access. Since basil the period lives on each item; a
 * subscription set to cancel at a time ends then; an ended one ended at `ended_at`.
 */
export function subscriptionAccessEnd(subscription: Pick<SubscriptionShape, 'items' | 'ended_at' | 'cancel_at'>): number | null {
  const periodEnds = subscription.items.data.map((item) => item.current_period_end);
  const periodEnd = periodEnds.length > 0 ? Math.max(...periodEnds) : null;
  if (subscription.ended_at !== null) return subscription.ended_at;
  if (subscription.cancel_at !== null) return periodEnd === null ? subscription.cancel_at : Math.min(subscription.cancel_at, periodEnd);
  return periodEnd;
}

/**
 * The invoices-table row for a Stripe invoice (amounts in integer minor units, as Stripe sends them).
 * Takes the invoice as parsed by invoiceShape (or a Stripe.Invoice of a supported version).
 */
export function invoiceSnapshot(invoice: InvoiceShape): InvoiceSnapshot {
  const periods = subscriptionLinePeriods(invoice);
  const details = invoice.parent?.subscription_details ?? null;
  // A subscription invoice's own period_start/period_end describe the previous period (Stripe's
  // convention); the billed period is on its subscription lines.
  const start = periods.length > 0 ? Math.min(...periods.map((p) => p.start)) : invoice.period_start;
  const end = periods.length > 0 ? Math.max(...periods.map((p) => p.end)) : invoice.period_end;
  return {
    stripeInvoiceId: invoice.id,
    stripeSubscriptionId: details ? idOf(details.subscription) : null,
    stripeCustomerId: idOf(invoice.customer),
    amountMinor: invoice.total,
    currency: invoice.currency.toLowerCase(),
    status: invoiceStatus(invoice.status),
    periodStart: new Date(start * 1000),
    periodEnd: new Date(Math.max(start, end) * 1000),
    hostedInvoiceUrl: invoice.hosted_invoice_url ?? null,
    created: new Date(invoice.created * 1000),
  };
}

function invoiceStatus(status: InvoiceShape['status']): InvoiceSnapshot['status'] {
  switch (status) {
    case 'open':
      return 'open';
    case 'paid':
      return 'paid';
    case 'uncollectible':
      return 'uncollectible';
    case 'void':
      return 'void';
    default:
      return 'draft';
  }
}

function subscriptionLinePeriods(invoice: InvoiceShape): { start: number; end: number }[] {
  return invoice.lines.data.filter((line) => line.parent?.type === 'subscription_item_details').map((line) => line.period);
}

function planOfSubscription(subscription: SubscriptionShape, plans: Plans): Plan | null {
  for (const item of subscription.items.data) {
    const plan = planForPriceId(plans, item.price.id);
    if (plan) return plan;
  }
  return planFromMetadata(subscription.metadata);
}

function planOfInvoice(invoice: InvoiceShape, plans: Plans): Plan | null {
  for (const line of invoice.lines.data) {
    const price = line.pricing?.price_details?.price;
    const plan = price === undefined || price === null ? null : planForPriceId(plans, idOf(price) ?? '');
    if (plan) return plan;
  }
  return null;
}

function planFromMetadata(metadata: Record<string, string>): Plan | null {
  const plan = metadata[planMetadataKey];
  return isPlan(plan) ? plan : null;
}

/** The id of an expandable field, whether Stripe sent the id or the object. */
export function idOf(value: string | { id?: string } | null | undefined): string | null {
  if (value === null || value === undefined) return null;
  return typeof value === 'string' ? value : (value.id ?? null);
}

function isoFromUnix(seconds: number): string {
  return new Date(seconds * 1000).toISOString();
}

function isoOrNull(seconds: number | null): string | null {
  return seconds === null ? null : isoFromUnix(seconds);
}

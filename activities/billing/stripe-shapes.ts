import { z } from 'zod';

/**
 * The parts of Stripe objects Berth reads, as Stripe renders them in the supported API versions
 * (api-versions.ts). An event whose object does not parse is refused and flagged for an operator,
 * never half-read: a missing period end must not turn into an invalid date or a silent default.
 * Source: the stripe package's types for its pinned version and Stripe's API reference.
 */

/** Unix seconds, as Stripe sends every timestamp (year 9999 at most: a Date can hold it). */
const unixSeconds = z.number().int().min(0).max(253_402_300_799);
/** An expandable field: the id, or the object carrying it. */
const expandable = z.union([z.string().min(1), z.object({ id: z.string().min(1) })]);
const metadata = z.record(z.string(), z.string());

/** Every subscription status Stripe documents; a new one is refused until Berth decides what it means. */
export const subscriptionStatuses = ['incomplete', 'incomplete_expired', 'trialing', 'active', 'past_due', 'unpaid', 'paused', 'canceled'] as const;
export type SubscriptionStatus = (typeof subscriptionStatuses)[number];

export const eventEnvelopeShape = z.object({
  id: z.string().min(1),
  type: z.string().min(1),
  created: unixSeconds,
  api_version: z.string().nullable().optional(),
  data: z.object({ object: z.record(z.string(), z.unknown()) }),
});

export const checkoutSessionShape = z.object({
  id: z.string().min(1),
  mode: z.string(),
  client_reference_id: z.string().nullable().optional(),
  metadata: metadata.nullable().optional(),
  customer: expandable.nullable(),
  subscription: expandable.nullable(),
  invoice: expandable.nullable().optional(),
  payment_status: z.enum(['paid', 'unpaid', 'no_payment_required']),
});
export type CheckoutSessionShape = z.infer<typeof checkoutSessionShape>;

export const subscriptionShape = z.object({
  id: z.string().min(1),
  status: z.enum(subscriptionStatuses),
  metadata,
  customer: expandable,
  cancel_at_period_end: z.boolean(),
  cancel_at: unixSeconds.nullable(),
  ended_at: unixSeconds.nullable(),
  items: z.object({
    data: z.array(z.object({
      // Since 2025-03-31.basil the period lives on each item, not on the subscription.
      current_period_start: unixSeconds,
      current_period_end: unixSeconds,
      price: z.object({ id: z.string().min(1) }),
    })).min(1),
  }),
});
export type SubscriptionShape = z.infer<typeof subscriptionShape>;

export const invoiceShape = z.object({
  id: z.string().min(1),
  customer: expandable.nullable(),
  total: z.number().int(),
  currency: z.string().min(3),
  status: z.enum(['draft', 'open', 'paid', 'uncollectible', 'void']).nullable(),
  period_start: unixSeconds,
  period_end: unixSeconds,
  hosted_invoice_url: z.string().nullable().optional(),
  created: unixSeconds,
  metadata: metadata.nullable().optional(),
  // Since basil an invoice's subscription is under parent.subscription_details.
  parent: z.object({
    subscription_details: z.object({ metadata: metadata.nullable().optional(), subscription: expandable }).nullable().optional(),
  }).nullable(),
  lines: z.object({
    data: z.array(z.object({
      parent: z.object({ type: z.string() }).nullable(),
      period: z.object({ start: unixSeconds, end: unixSeconds }),
      pricing: z.object({ price_details: z.object({ price: expandable }).nullable().optional() }).nullable().optional(),
    })),
  }),
});
export type InvoiceShape = z.infer<typeof invoiceShape>;

/** A zod error as one line an operator can act on: where, and what was wrong. */
export function describeShapeError(error: z.ZodError): string {
  return error.issues.slice(0, 5).map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`).join('; ');
}

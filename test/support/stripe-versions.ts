/**
 * Stripe events as an endpoint of a given API version receives them, built from the local
 * billing's objects (the stripe package's pinned shapes):
 * - one sample version of each major Berth supports (docs/decisions/013): the fields Berth reads
 *   are the same from 2025-03-31.basil on, so the objects differ only in `api_version`;
 * - 2024-06-20, the last version before acacia and basil: the period on the subscription and not
 *   on its items, an invoice's subscription at the top level (no `parent`), line items carrying a
 *   `price` object instead of `pricing`. Rewritten field by field from Stripe's changelog for basil
 *   (docs.stripe.com/changelog/basil) and the stripe package's 18.0.0 notes.
 */
import type Stripe from 'stripe';
import { stripeApiVersion } from '../../activities/billing/stripe-client.ts';

/** One version of each supported major: the first of basil, clover and dahlia, and the pinned one. */
export const supportedVersionSamples = ['2025-03-31.basil', '2025-09-30.clover', '2026-03-25.dahlia', stripeApiVersion] as const;

/** A version before basil, as an endpoint left on an old default sends: shapes Berth does not read. */
export const legacyVersion = '2024-06-20';

/** The event as an endpoint pinned to `version` (one of supportedVersionSamples) receives it. */
export function inVersion<E extends Stripe.Event>(event: E, version: string): E {
  return { ...structuredClone(event), api_version: version };
}

type Json = Record<string, unknown>;

/** The event as a 2024-06-20 endpoint receives it. */
export function inLegacyVersion(event: Stripe.Event): Stripe.Event {
  const copy = structuredClone(event) as unknown as Json & { data: { object: Json } };
  copy.api_version = legacyVersion;
  const object = copy.data.object;
  if (object.object === 'subscription') copy.data.object = legacySubscription(object);
  if (object.object === 'invoice') copy.data.object = legacyInvoice(object);
  return copy as unknown as Stripe.Event;
}

function legacySubscription(sub: Json): Json {
  const items = sub.items as { data: Json[] };
  const first = items.data[0]!;
  const { billing_schedules: _schedules, billing_mode: _mode, ...rest } = sub;
  return {
    ...rest,
    current_period_start: first.current_period_start,
    current_period_end: first.current_period_end,
    discount: null,
    items: {
      ...items,
      data: items.data.map((item) => {
        const { current_period_start: _start, current_period_end: _end, current_trial: _trial, ...legacy } = item;
        return legacy;
      }),
    },
  };
}

function legacyInvoice(invoice: Json): Json {
  const parent = invoice.parent as { subscription_details: { metadata: Json; subscription: string } } | null;
  const lines = invoice.lines as { data: Json[] };
  const { parent: _parent, amount_overpaid: _overpaid, payments: _payments, confirmation_secret: _secret, ...rest } = invoice;
  return {
    ...rest,
    subscription: parent?.subscription_details.subscription ?? null,
    subscription_details: { metadata: parent?.subscription_details.metadata ?? null },
    paid: invoice.status === 'paid',
    paid_out_of_band: false,
    payment_intent: null,
    charge: null,
    discount: null,
    lines: {
      ...lines,
      data: lines.data.map((line) => {
        const { parent: lineParent, pricing, taxes: _taxes, pretax_credit_amounts: _credits, ...legacy } = line as Json & {
          parent: { subscription_item_details: { subscription: string; subscription_item: string } } | null;
          pricing: { price_details: { price: string; product: string } } | null;
        };
        return {
          ...legacy,
          type: 'subscription',
          subscription: lineParent?.subscription_item_details.subscription ?? null,
          subscription_item: lineParent?.subscription_item_details.subscription_item ?? null,
          proration: false,
          price: pricing ? { id: pricing.price_details.price, object: 'price', product: pricing.price_details.product, type: 'recurring' } : null,
          tax_amounts: [],
        };
      }),
    },
  };
}

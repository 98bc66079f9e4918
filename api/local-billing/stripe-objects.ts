import { randomBytes } from 'node:crypto';
import type Stripe from 'stripe';
import { stripeApiVersion } from '../../activities/billing/stripe-client.ts';
import { planMetadataKey, userIdMetadataKey } from '../../activities/billing/normalize.ts';
import type { Plan } from '../../db/database.ts';

// Stripe objects built field by field against the stripe package's own types (the API version it
// pins), so the compiler tells us when a local event no longer has Stripe's shape.

/** A Stripe-looking id: prefix + 24 random alphanumerics. */
export function stripeId(prefix: string): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  return `${prefix}_${Array.from(randomBytes(24), (b) => alphabet[b % alphabet.length]).join('')}`;
}

/** Everything the local billing knows about one customer's subscription. Times in unix seconds. */
export interface LocalSubscription {
  userId: string;
  email: string | null;
  plan: Plan;
  priceId: string;
  productId: string;
  amountMinor: number;
  currency: string;
  customerId: string;
  subscriptionId: string;
  itemId: string;
  status: Stripe.Subscription.Status;
  created: number;
  periodStart: number;
  periodEnd: number;
  cancelAtPeriodEnd: boolean;
  canceledAt: number | null;
  endedAt: number | null;
  latestInvoiceId: string | null;
}

const metadataOf = (sub: LocalSubscription): Stripe.Metadata => ({ [userIdMetadataKey]: sub.userId, [planMetadataKey]: sub.plan });

export function buildPrice(sub: LocalSubscription): Stripe.Price {
  return {
    id: sub.priceId,
    object: 'price',
    active: true,
    billing_scheme: 'per_unit',
    created: sub.created,
    currency: sub.currency,
    custom_unit_amount: null,
    livemode: false,
    lookup_key: null,
    metadata: {},
    nickname: null,
    product: sub.productId,
    recurring: { interval: 'month', interval_count: 1, meter: null, trial_period_days: null, usage_type: 'licensed' },
    tax_behavior: 'unspecified',
    tiers_mode: null,
    transform_quantity: null,
    type: 'recurring',
    unit_amount: sub.amountMinor,
    unit_amount_decimal: null,
  };
}

export function buildPlan(sub: LocalSubscription): Stripe.Plan {
  return {
    id: sub.priceId,
    object: 'plan',
    active: true,
    amount: sub.amountMinor,
    amount_decimal: null,
    billing_scheme: 'per_unit',
    created: sub.created,
    currency: sub.currency,
    interval: 'month',
    interval_count: 1,
    livemode: false,
    metadata: {},
    meter: null,
    nickname: null,
    product: sub.productId,
    tiers_mode: null,
    transform_usage: null,
    trial_period_days: null,
    usage_type: 'licensed',
  };
}

export function buildSubscription(sub: LocalSubscription): Stripe.Subscription {
  const item: Stripe.SubscriptionItem = {
    id: sub.itemId,
    object: 'subscription_item',
    billing_thresholds: null,
    created: sub.created,
    current_period_end: sub.periodEnd,
    current_period_start: sub.periodStart,
    current_trial: null,
    discounts: [],
    metadata: {},
    plan: buildPlan(sub),
    price: buildPrice(sub),
    quantity: 1,
    subscription: sub.subscriptionId,
    tax_rates: [],
  };
  return {
    id: sub.subscriptionId,
    object: 'subscription',
    application: null,
    application_fee_percent: null,
    automatic_tax: { disabled_reason: null, enabled: false, liability: null },
    billing_cycle_anchor: sub.created,
    billing_cycle_anchor_config: null,
    billing_mode: { flexible: null, type: 'classic' },
    billing_schedules: [],
    billing_thresholds: null,
    cancel_at: sub.cancelAtPeriodEnd ? sub.periodEnd : null,
    cancel_at_period_end: sub.cancelAtPeriodEnd,
    canceled_at: sub.canceledAt,
    cancellation_details: { comment: null, feedback: null, feedback_option: null, reason: sub.canceledAt === null ? null : 'cancellation_requested' },
    collection_method: 'charge_automatically',
    created: sub.created,
    currency: sub.currency,
    customer: sub.customerId,
    customer_account: null,
    days_until_due: null,
    default_payment_method: null,
    default_source: null,
    default_tax_rates: [],
    description: null,
    discounts: [],
    ended_at: sub.endedAt,
    invoice_settings: { account_tax_ids: null, custom_fields: null, description: null, footer: null, issuer: { type: 'self' } },
    items: { object: 'list', data: [item], has_more: false, url: `/v1/subscription_items?subscription=${sub.subscriptionId}` },
    latest_invoice: sub.latestInvoiceId,
    livemode: false,
    managed_payments: null,
    metadata: metadataOf(sub),
    next_pending_invoice_item_invoice: null,
    on_behalf_of: null,
    pause_collection: null,
    payment_settings: { payment_method_options: null, payment_method_types: null, save_default_payment_method: 'off' },
    pending_invoice_item_interval: null,
    pending_setup_intent: null,
    pending_update: null,
    schedule: null,
    start_date: sub.created,
    status: sub.status,
    test_clock: null,
    transfer_data: null,
    trial_end: null,
    trial_settings: { end_behavior: { billing_cycle_anchor: null, missing_payment_method: 'create_invoice' } },
    trial_start: null,
  };
}

export interface LocalInvoiceOptions {
  id: string;
  status: 'open' | 'paid';
  billingReason: 'subscription_create' | 'subscription_cycle';
  periodStart: number;
  periodEnd: number;
  attemptCount: number;
  created: number;
  /** For an unpaid invoice: when Stripe would try again. */
  nextPaymentAttempt: number | null;
}

export function buildInvoice(sub: LocalSubscription, opts: LocalInvoiceOptions, appUrl: string): Stripe.Invoice {
  const paid = opts.status === 'paid';
  const line: Stripe.InvoiceLineItem = {
    id: stripeId('il'),
    object: 'line_item',
    amount: sub.amountMinor,
    currency: sub.currency,
    description: `1 × Berth ${sub.plan} (at ${(sub.amountMinor / 100).toFixed(2)} / month)`,
    discount_amounts: [],
    discountable: true,
    discounts: [],
    invoice: opts.id,
    livemode: false,
    metadata: metadataOf(sub),
    parent: {
      type: 'subscription_item_details',
      invoice_item_details: null,
      subscription_item_details: { invoice_item: null, proration: false, proration_details: { credited_items: null }, subscription: sub.subscriptionId, subscription_item: sub.itemId },
    },
    period: { start: opts.periodStart, end: opts.periodEnd },
    pretax_credit_amounts: [],
    pricing: { type: 'price_details', price_details: { price: sub.priceId, product: sub.productId }, unit_amount_decimal: null },
    quantity: 1,
    quantity_decimal: null,
    subscription: sub.subscriptionId,
    subtotal: sub.amountMinor,
    taxes: [],
  };
  return {
    id: opts.id,
    object: 'invoice',
    account_country: 'DE',
    account_name: 'Berth (local)',
    account_tax_ids: null,
    amount_due: sub.amountMinor,
    amount_overpaid: 0,
    amount_paid: paid ? sub.amountMinor : 0,
    amount_remaining: paid ? 0 : sub.amountMinor,
    amount_shipping: 0,
    application: null,
    attempt_count: opts.attemptCount,
    attempted: opts.attemptCount > 0,
    auto_advance: !paid,
    automatic_tax: { disabled_reason: null, enabled: false, liability: null, provider: null, status: null },
    automatically_finalizes_at: null,
    billing_reason: opts.billingReason,
    collection_method: 'charge_automatically',
    created: opts.created,
    currency: sub.currency,
    custom_fields: null,
    customer: sub.customerId,
    customer_account: null,
    customer_address: null,
    customer_email: sub.email,
    customer_name: null,
    customer_phone: null,
    customer_shipping: null,
    customer_tax_exempt: 'none',
    customer_tax_ids: [],
    default_payment_method: null,
    default_source: null,
    default_tax_rates: [],
    description: null,
    discounts: [],
    due_date: null,
    effective_at: opts.created,
    ending_balance: 0,
    footer: null,
    from_invoice: null,
    hosted_invoice_url: `${appUrl}/local-billing/invoices/${opts.id}`,
    invoice_pdf: null,
    issuer: { type: 'self' },
    last_finalization_error: null,
    latest_revision: null,
    lines: { object: 'list', data: [line], has_more: false, url: `/v1/invoices/${opts.id}/lines` },
    livemode: false,
    metadata: {},
    next_payment_attempt: opts.nextPaymentAttempt,
    number: `BERTH-${opts.id.slice(-8).toUpperCase()}`,
    on_behalf_of: null,
    parent: {
      type: 'subscription_details',
      quote_details: null,
      subscription_details: { metadata: metadataOf(sub), subscription: sub.subscriptionId },
    },
    payment_settings: { default_mandate: null, payment_method_options: null, payment_method_types: null },
    // Stripe's convention: a subscription invoice's own period is the one before the billed lines.
    period_end: opts.periodStart,
    period_start: opts.billingReason === 'subscription_create' ? opts.periodStart : opts.periodStart - (opts.periodEnd - opts.periodStart),
    post_payment_credit_notes_amount: 0,
    pre_payment_credit_notes_amount: 0,
    receipt_number: null,
    rendering: null,
    shipping_cost: null,
    shipping_details: null,
    starting_balance: 0,
    statement_descriptor: null,
    status: opts.status,
    status_transitions: { finalized_at: opts.created, marked_uncollectible_at: null, paid_at: paid ? opts.created : null, voided_at: null },
    subtotal: sub.amountMinor,
    subtotal_excluding_tax: sub.amountMinor,
    test_clock: null,
    total: sub.amountMinor,
    total_discount_amounts: [],
    total_excluding_tax: sub.amountMinor,
    total_pretax_credit_amounts: [],
    total_taxes: [],
    webhooks_delivered_at: null,
  };
}

export interface LocalCheckoutOptions {
  sessionId: string;
  created: number;
  successUrl: string;
  cancelUrl: string;
  invoiceId: string;
  /** How the customer pays: by card (paid at once, the default) or SEPA Direct Debit (paid days later). */
  method?: LocalPaymentMethod;
  /** Checkout's payment status; a SEPA session completes `unpaid` and turns `paid` when the debit clears. */
  paymentStatus?: 'paid' | 'unpaid';
}

/** The payment methods the local checkout offers: one immediate, one with delayed notification. */
export type LocalPaymentMethod = 'card' | 'sepa_debit';

export function buildCheckoutSession(sub: LocalSubscription, opts: LocalCheckoutOptions): Stripe.Checkout.Session {
  return {
    id: opts.sessionId,
    object: 'checkout.session',
    adaptive_pricing: null,
    after_expiration: null,
    allow_promotion_codes: null,
    allowed_payment_method_types: null,
    amount_subtotal: sub.amountMinor,
    amount_total: sub.amountMinor,
    automatic_tax: { enabled: false, liability: null, provider: null, status: null },
    billing_address_collection: null,
    cancel_url: opts.cancelUrl,
    client_reference_id: sub.userId,
    client_secret: null,
    collected_information: null,
    consent: null,
    consent_collection: null,
    created: opts.created,
    currency: sub.currency,
    currency_conversion: null,
    custom_fields: [],
    custom_text: { after_submit: null, shipping_address: null, submit: null, terms_of_service_acceptance: null },
    customer: sub.customerId,
    customer_account: null,
    customer_creation: null,
    customer_details: { address: null, business_name: null, email: sub.email, individual_name: null, name: null, phone: null, tax_exempt: 'none', tax_ids: [] },
    customer_email: null,
    discounts: [],
    expires_at: opts.created + 24 * 3600,
    integration_identifier: null,
    invoice: opts.invoiceId,
    invoice_creation: null,
    livemode: false,
    locale: null,
    managed_payments: null,
    metadata: metadataOf(sub),
    mode: 'subscription',
    origin_context: null,
    payment_intent: null,
    payment_link: null,
    payment_method_collection: 'always',
    payment_method_configuration_details: null,
    payment_method_options: null,
    payment_method_types: [opts.method ?? 'card'],
    payment_status: opts.paymentStatus ?? 'paid',
    permissions: null,
    recovered_from: null,
    saved_payment_method_options: null,
    setup_intent: null,
    shipping_address_collection: null,
    shipping_cost: null,
    shipping_options: [],
    status: 'complete',
    submit_type: null,
    subscription: sub.subscriptionId,
    success_url: opts.successUrl,
    total_details: { amount_discount: 0, amount_shipping: 0, amount_tax: 0 },
    ui_mode: 'hosted',
    url: null,
    wallet_options: null,
  };
}

type EventOf<T extends Stripe.Event['type']> = Extract<Stripe.Event, { type: T }>;

/** A v1 snapshot event around `object`, as Stripe sends it to a webhook endpoint. */
export function buildEvent<T extends Stripe.Event['type']>(
  type: T,
  object: EventOf<T>['data']['object'],
  opts: { created: number; id?: string; previousAttributes?: Record<string, unknown> },
): EventOf<T> {
  const event = {
    id: opts.id ?? stripeId('evt'),
    object: 'event',
    api_version: stripeApiVersion,
    created: opts.created,
    data: opts.previousAttributes ? { object, previous_attributes: opts.previousAttributes } : { object },
    livemode: false,
    pending_webhooks: 1,
    request: { id: null, idempotency_key: null },
    type,
  };
  return event as unknown as EventOf<T>;
}

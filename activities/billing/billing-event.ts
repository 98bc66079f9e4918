import type { Plan } from '../../db/database.ts';
import type { SubscriptionStatus } from './stripe-shapes.ts';
import type { BillingEvent as LifecycleBillingEvent } from '../../workflows/messages.ts';

/**
 * What a Stripe event means to Berth. The customer workflow receives these (one signal per Stripe
 * event), deduplicates them by `eventId` and ignores stale ones by `created`.
 */
export const billingEventTypes = [
  /** Checkout finished: the customer has a Stripe customer and subscription; `paid` says whether money came. */
  'checkout.completed',
  /** A delayed payment method (SEPA Direct Debit, ...) of a completed checkout paid after all. */
  'checkout.payment_succeeded',
  /** A delayed payment method of a completed checkout failed: the first payment never came. */
  'checkout.payment_failed',
  /** The subscription was created or changed (plan, period, cancel at period end, status). */
  'subscription.updated',
  /** The subscription ended: access ends at `accessEndsAt`. */
  'subscription.deleted',
  /** An invoice was paid: access runs until `accessEndsAt`. */
  'payment.succeeded',
  /** A payment attempt failed: the paid period ends at `accessEndsAt`; grace starts. */
  'payment.failed',
  /** The bank wants the customer to authenticate (3-D Secure): like a failure until they do. */
  'payment.action_required',
] as const;
export type BillingEventType = (typeof billingEventTypes)[number];

/** Plain JSON (ISO strings for times) so it travels as a Temporal signal argument unchanged. */
export interface BillingEvent {
  /** Stripe's event id (evt_...): the workflow's deduplication key. */
  eventId: string;
  type: BillingEventType;
  /** When Stripe created the event (ISO 8601): orders events that arrive out of order. */
  created: string;
  /** Until when the customer has paid access (ISO 8601), or null when this event does not say. */
  accessEndsAt: string | null;
  /** The plan bought, or null when this event does not say. */
  plan: Plan | null;
  /** True when the subscription will not renew (canceled at period end or at a set time); null: unknown. */
  cancelAtPeriodEnd: boolean | null;
  /** Stripe's subscription status when the event carries a subscription ('active', 'past_due', ...). */
  subscriptionStatus: SubscriptionStatus | null;
  /**
   * Checkout events: whether money came with them (Checkout's `paid` or `no_payment_required`; false
   * while a delayed payment method has not paid, or when it failed). Null for other events.
   */
  paid: boolean | null;
  stripeCustomerId: string | null;
  stripeSubscriptionId: string | null;
  stripeInvoiceId: string | null;
}

/** The id of the customer workflow that billing events are delivered to. */
export function customerWorkflowId(userId: string): string {
  return `customer-${userId}`;
}

const lifecycleTypes = {
  'checkout.completed': 'checkout_completed',
  // The delayed payment arrived: for the lifecycle, the checkout is now paid.
  'checkout.payment_succeeded': 'checkout_completed',
  'checkout.payment_failed': 'payment_failed',
  'subscription.updated': 'subscription_updated',
  'subscription.deleted': 'subscription_deleted',
  'payment.succeeded': 'invoice_paid',
  'payment.failed': 'payment_failed',
  // Until the customer authenticates, the renewal is not paid: the same as a failed payment.
  'payment.action_required': 'payment_failed',
} as const satisfies Record<BillingEventType, LifecycleBillingEvent['type']>;

/**
 * The billing event as the customer's lifecycle workflow takes it (workflows/messages.ts): only what
 * the lifecycle acts on, with "this event does not say" as an absent field rather than null.
 */
export function toLifecycleEvent(event: BillingEvent): LifecycleBillingEvent {
  return {
    eventId: event.eventId,
    type: lifecycleTypes[event.type],
    created: event.created,
    ...(event.accessEndsAt !== null ? { accessEndsAt: event.accessEndsAt } : {}),
    ...(event.plan !== null ? { plan: event.plan } : {}),
    ...(event.cancelAtPeriodEnd !== null ? { cancelAtPeriodEnd: event.cancelAtPeriodEnd } : {}),
    ...(event.subscriptionStatus !== null ? { subscriptionStatus: event.subscriptionStatus } : {}),
    ...(event.paid !== null && lifecycleTypes[event.type] === 'checkout_completed' ? { paid: event.paid } : {}),
  };
}

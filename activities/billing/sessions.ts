import type Stripe from 'stripe';
import type { Db, Plan } from '../../db/database.ts';
import { planMetadataKey, userIdMetadataKey } from './normalize.ts';
import type { Plans } from './plans.ts';
import { findStripeCustomerId, linkStripeCustomer } from './store.ts';

/** What the billing page needs from billing, whether Stripe or the local checkout is behind it. */
export interface BillingSessions {
  createCheckoutSession(input: CheckoutInput): Promise<{ id: string; url: string }>;
  createPortalSession(input: PortalInput): Promise<{ id: string; url: string }>;
}

export interface CheckoutInput {
  userId: string;
  email: string;
  plan: Plan;
  /**
   * Identifies this customer request (e.g. a nonce in the billing form). A retry of the same
   * request reuses the same Checkout Session; a new request gets a new one.
   */
  requestId: string;
}

export interface PortalInput {
  userId: string;
  requestId: string;
}

/** A request needed a Stripe customer and the user has none yet (never checked out). */
export class NoStripeCustomerError extends Error {
  constructor(userId: string) {
    super(`user ${userId} has no Stripe customer yet`);
    this.name = 'NoStripeCustomerError';
  }
}

/**
 * Stripe Idempotency-Key for one side effect: user + purpose + request. Stripe replays the first
 * response for a repeated key (for 24 h), so a retried call cannot create a second object.
 */
export function idempotencyKey(userId: string, purpose: string, requestId = 'once'): string {
  return `berth:${userId}:${purpose}:${requestId}`;
}

export interface StripeSessionsDeps {
  stripe: Stripe;
  db: Db;
  plans: Plans;
  /** APP_URL: where Checkout and the Portal send the customer back. */
  appUrl: string;
}

/**
 * The user's Stripe customer: the one recorded in customers, else a new one created under a
 * per-user idempotency key and recorded at once, so later checkouts reuse it.
 */
export async function ensureStripeCustomer(deps: StripeSessionsDeps, user: { userId: string; email: string }): Promise<string> {
  const known = await findStripeCustomerId(deps.db, user.userId);
  if (known) return known;
  const customer = await deps.stripe.customers.create(
    { email: user.email, metadata: { [userIdMetadataKey]: user.userId } },
    { idempotencyKey: idempotencyKey(user.userId, 'customer') },
  );
  await linkStripeCustomer(deps.db, { userId: user.userId, stripeCustomerId: customer.id, stripeSubscriptionId: null });
  return customer.id;
}

/** Checkout and Portal sessions on Stripe's API. */
export function createStripeSessions(deps: StripeSessionsDeps): BillingSessions {
  return {
    async createCheckoutSession(input) {
      const customer = await ensureStripeCustomer(deps, input);
      const metadata = { [userIdMetadataKey]: input.userId, [planMetadataKey]: input.plan };
      const session = await deps.stripe.checkout.sessions.create(
        {
          mode: 'subscription',
          customer,
          client_reference_id: input.userId,
          line_items: [{ price: deps.plans[input.plan].stripePriceId, quantity: 1 }],
          metadata,
          // Copied onto the subscription, hence onto every invoice's parent.subscription_details:
          // each later event names its user without a lookup.
          subscription_data: { metadata },
          success_url: `${deps.appUrl}/billing/success?session_id={CHECKOUT_SESSION_ID}`,
          cancel_url: `${deps.appUrl}/billing/canceled`,
        },
        { idempotencyKey: idempotencyKey(input.userId, `checkout:${input.plan}`, input.requestId) },
      );
      if (!session.url) throw new Error(`Checkout Session ${session.id} has no url`);
      return { id: session.id, url: session.url };
    },

    async createPortalSession(input) {
      const customer = await findStripeCustomerId(deps.db, input.userId);
      if (!customer) throw new NoStripeCustomerError(input.userId);
      const session = await deps.stripe.billingPortal.sessions.create(
        { customer, return_url: `${deps.appUrl}/billing` },
        { idempotencyKey: idempotencyKey(input.userId, 'portal', input.requestId) },
      );
      return { id: session.id, url: session.url };
    },
  };
}

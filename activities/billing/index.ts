import type Stripe from 'stripe';
import type { Db } from '../../db/database.ts';
import type { Logger } from '../../lib/log.ts';
import type { BillingEventDelivery } from './delivery.ts';
import { syncInvoices } from './invoices.ts';
import type { Plans } from './plans.ts';
import { reconcileStripeEvents, type ReconcileResult } from './reconcile.ts';

export type { BillingEvent, BillingEventType } from './billing-event.ts';
export { billingEventTypes } from './billing-event.ts';

export interface BillingActivityDeps {
  /** Null with local billing (no STRIPE_SECRET_KEY): nothing to sync or reconcile against. */
  stripe: Stripe | null;
  db: Db;
  plans: Plans;
  delivery: BillingEventDelivery;
  log: Logger;
}

/** Billing's activities, built from their dependencies (worker/ passes real ones). */
export function createBillingActivities(deps: BillingActivityDeps) {
  return {
    /** Replays Stripe events of the last 72 h that our webhook did not process. Idempotent. */
    async reconcileStripeEvents(): Promise<ReconcileResult> {
      if (!deps.stripe) return { listed: 0, replayed: 0, outcomes: {} };
      return reconcileStripeEvents({ ...deps, stripe: deps.stripe });
    },
    /** Mirrors a user's Stripe invoices into the invoices table. Idempotent (upsert by Stripe id). */
    async syncInvoices(userId: string): Promise<number> {
      if (!deps.stripe) return 0;
      return syncInvoices({ stripe: deps.stripe, db: deps.db }, userId);
    },
  };
}

export type BillingActivities = ReturnType<typeof createBillingActivities>;

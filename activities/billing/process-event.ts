import type Stripe from 'stripe';
import type { Db } from '../../db/database.ts';
import type { Logger } from '../../lib/log.ts';
import type { BillingEventDelivery } from './delivery.ts';
import { normalizeStripeEvent } from './normalize.ts';
import type { Plans } from './plans.ts';
import { insertStripeEventIfNew, markStripeEventProcessed } from '../../db/repositories/stripe-events.ts';
import { findUserIdByStripeIds, linkStripeCustomer, lockStripeEvent, upsertInvoiceInOrder } from './store.ts';

export interface ProcessStripeEventDeps {
  db: Db;
  plans: Plans;
  delivery: BillingEventDelivery;
  log: Logger;
}

/**
 * - ignored: a type Berth does not act on (acknowledged, nothing recorded)
 * - unresolved: no Berth user owns it (acknowledged, logged, nothing recorded)
 * - processed: this call delivered it
 * - duplicate: an earlier delivery already took effect
 */
export type ProcessOutcome = 'ignored' | 'unresolved' | 'processed' | 'duplicate';

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Gives one verified Stripe event its effect exactly once (docs/decisions/006-stripe-events-exactly-once.md):
 * 1. one transaction records the event id (unique) together with the database effect (customer link,
 *    invoice), so the effect exists iff the row does;
 * 2. a second transaction locks that row and, while processed_at is null, signals the workflow and
 *    sets processed_at. Concurrent redeliveries wait on the lock and then see it processed; a crash
 *    between signal and commit re-signals on the next delivery, which the workflow drops by event id.
 * Throws when the effect could not be completed: the caller answers 5xx and Stripe retries.
 */
export async function processStripeEvent(deps: ProcessStripeEventDeps, event: Stripe.Event): Promise<ProcessOutcome> {
  const normalized = normalizeStripeEvent(event, deps.plans);
  if (normalized === null) return 'ignored';
  const billing = normalized.event;

  let userId = normalized.userId;
  if (userId === null) {
    userId = await findUserIdByStripeIds(deps.db, { stripeCustomerId: billing.stripeCustomerId, stripeSubscriptionId: billing.stripeSubscriptionId });
  }
  if (userId === null || !uuidPattern.test(userId)) {
    deps.log.warn({ eventId: event.id, type: event.type, customer: billing.stripeCustomerId }, 'stripe event for no Berth user: ignored');
    return 'unresolved';
  }
  const owner = userId;

  await deps.db.transaction().execute(async (trx) => {
    const first = await insertStripeEventIfNew(trx, { eventId: event.id, type: event.type, created: new Date(event.created * 1000) });
    if (!first) return;
    await linkStripeCustomer(trx, {
      userId: owner,
      stripeCustomerId: billing.stripeCustomerId,
      // An ended subscription does not replace the link to a newer one.
      stripeSubscriptionId: billing.type === 'subscription.deleted' ? null : billing.stripeSubscriptionId,
    });
    if (normalized.invoice) await upsertInvoiceInOrder(trx, owner, normalized.invoice);
  });

  return deps.db.transaction().execute(async (trx) => {
    const row = await lockStripeEvent(trx, event.id);
    if (row === undefined) throw new Error(`stripe event ${event.id} vanished after it was recorded`);
    if (row.processedAt !== null) return 'duplicate';
    await deps.delivery.deliver(owner, billing);
    await markStripeEventProcessed(trx, event.id);
    deps.log.info({ eventId: event.id, type: event.type, userId: owner }, 'stripe event delivered');
    return 'processed';
  });
}

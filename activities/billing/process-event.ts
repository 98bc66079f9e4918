import { createHash } from 'node:crypto';
import type Stripe from 'stripe';
import type { Db } from '../../db/database.ts';
import type { Logger } from '../../lib/log.ts';
import type { BillingEventDelivery } from './delivery.ts';
import { normalizeStripeEvent } from './normalize.ts';
import type { Plans } from './plans.ts';
import { insertStripeEventIfNew, markStripeEventProcessed } from '../../db/repositories/stripe-events.ts';
import { findUserIdByStripeIds, linkStripeCustomer, lockStripeEvent, recordStripeEventNeedingAttention, upsertInvoiceInOrder, type AttentionRow } from './store.ts';

export interface ProcessStripeEventDeps {
  db: Db;
  plans: Plans;
  delivery: BillingEventDelivery;
  log: Logger;
}

/**
 * - ignored: a type Berth does not act on (acknowledged, nothing recorded)
 * - needs_attention: an API version or shape Berth does not read (acknowledged, recorded with the
 *   reason for an operator, logged as an error; nothing else happens and nothing retries it)
 * - unresolved: no Berth user owns it (acknowledged, logged, nothing recorded)
 * - processed: this call delivered it
 * - duplicate: an earlier delivery already took effect
 */
export type ProcessOutcome = 'ignored' | 'needs_attention' | 'unresolved' | 'processed' | 'duplicate';

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Gives one verified Stripe event its effect exactly once (docs/decisions/006-stripe-events-exactly-once.md):
 * 1. one transaction records the event id (unique) together with the database effect (customer link,
 *    invoice), so the effect exists iff the row does;
 * 2. a second transaction locks that row and, while processed_at is null, signals the workflow and
 *    sets processed_at. Concurrent redeliveries wait on the lock and then see it processed; a crash
 *    between signal and commit re-signals on the next delivery, which the workflow drops by event id.
 * Throws only when the effect could not be completed (database or Temporal unreachable): the caller
 * answers 5xx and Stripe retries. No payload makes it throw: what Berth cannot read is recorded as
 * needing attention and acknowledged, since a retry would bring the same bytes.
 */
export async function processStripeEvent(deps: ProcessStripeEventDeps, event: Stripe.Event): Promise<ProcessOutcome> {
  const normalized = normalizeStripeEvent(event, deps.plans);
  if (normalized.outcome === 'ignored') return 'ignored';
  if (normalized.outcome === 'refused') {
    const row = refusedEventRow(event, normalized.reason);
    await recordStripeEventNeedingAttention(deps.db, row);
    deps.log.error({ eventId: row.eventId, type: row.type, apiVersion: row.apiVersion, reason: row.attention }, 'stripe event not read: needs attention');
    return 'needs_attention';
  }
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

/**
 * The row that records a refused event. Read defensively: the payload may be anything, so each
 * field falls back to something storable (an id derived from the payload, the time now).
 */
function refusedEventRow(event: unknown, reason: string): AttentionRow {
  const e = (typeof event === 'object' && event !== null ? event : {}) as Record<string, unknown>;
  const text = (value: unknown, max: number): string | null => (typeof value === 'string' && value !== '' ? value.slice(0, max) : null);
  const created = typeof e.created === 'number' && Number.isInteger(e.created) && e.created >= 0 && e.created < 253_402_300_800 ? new Date(e.created * 1000) : new Date();
  return {
    eventId: text(e.id, 255) ?? `unreadable_${createHash('sha256').update(JSON.stringify(event) ?? '').digest('hex').slice(0, 32)}`,
    type: text(e.type, 255) ?? 'unknown',
    created,
    apiVersion: text(e.api_version, 64),
    attention: reason.slice(0, 2000),
  };
}

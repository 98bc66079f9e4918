import type { Db } from '../../db/database.ts';
import type { InvoiceSnapshot } from './normalize.ts';
import { upsertInvoice } from '../../db/repositories/invoices.ts';

// Billing's queries that db/repositories does not have (or has without the ordering guards billing
// needs). Each takes the db or a transaction first.

/**
 * Locks an event's row until the transaction ends and says whether it was processed. Concurrent
 * deliveries of one event queue here, so only the first delivers it.
 */
export async function lockStripeEvent(trx: Db, eventId: string): Promise<{ processedAt: Date | null } | undefined> {
  return trx.selectFrom('stripeEvents').select('processedAt').where('eventId', '=', eventId).forUpdate().executeTakeFirst();
}

/** Processed state of these event ids: the ones missing or unprocessed still need their effect. */
export async function stripeEventsProcessed(db: Db, eventIds: readonly string[]): Promise<Map<string, boolean>> {
  if (eventIds.length === 0) return new Map();
  const rows = await db.selectFrom('stripeEvents').select(['eventId', 'processedAt']).where('eventId', 'in', eventIds).execute();
  return new Map(rows.map((r) => [r.eventId, r.processedAt !== null]));
}

/** The user a Stripe customer or subscription belongs to, from the customers projection. */
export async function findUserIdByStripeIds(db: Db, ids: { stripeCustomerId: string | null; stripeSubscriptionId: string | null }): Promise<string | null> {
  if (ids.stripeCustomerId === null && ids.stripeSubscriptionId === null) return null;
  const row = await db
    .selectFrom('customers')
    .select('userId')
    .where((eb) =>
      eb.or([
        ...(ids.stripeCustomerId ? [eb('stripeCustomerId', '=', ids.stripeCustomerId)] : []),
        ...(ids.stripeSubscriptionId ? [eb('stripeSubscriptionId', '=', ids.stripeSubscriptionId)] : []),
      ]),
    )
    .executeTakeFirst();
  return row?.userId ?? null;
}

/** The Stripe customer id recorded for a user, if any: Checkout reuses it. */
export async function findStripeCustomerId(db: Db, userId: string): Promise<string | null> {
  const row = await db.selectFrom('customers').select('stripeCustomerId').where('userId', '=', userId).executeTakeFirst();
  return row?.stripeCustomerId ?? null;
}

/**
 * Links a user to their Stripe customer and subscription, creating the customers row if the
 * workflow has not yet. Order-independent: a null never erases a known id.
 */
export async function linkStripeCustomer(
  db: Db,
  link: { userId: string; stripeCustomerId: string | null; stripeSubscriptionId: string | null },
): Promise<void> {
  await db
    .insertInto('customers')
    .values({ userId: link.userId, plan: null, accessEndsAt: null, lastActiveAt: null, stripeCustomerId: link.stripeCustomerId, stripeSubscriptionId: link.stripeSubscriptionId })
    .onConflict((oc) =>
      oc.column('userId').doUpdateSet((eb) => ({
        stripeCustomerId: eb.fn.coalesce('customers.stripeCustomerId', 'excluded.stripeCustomerId'),
        stripeSubscriptionId: eb.fn.coalesce('excluded.stripeSubscriptionId', 'customers.stripeSubscriptionId'),
        updatedAt: new Date(),
      })),
    )
    .execute();
}

/** Mirrors an invoice from a Stripe event or listing (db/repositories/invoices.ts keeps statuses in order). */
export async function upsertInvoiceInOrder(db: Db, userId: string, invoice: InvoiceSnapshot): Promise<void> {
  const { stripeCustomerId: _customer, created, ...fields } = invoice;
  await upsertInvoice(db, { userId, ...fields, createdAt: created });
}

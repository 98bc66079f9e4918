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

/**
 * Settled state of these event ids: true once processed, or once recorded as needing attention (an
 * operator must act; replaying the same payload cannot help). Missing or false: still owed.
 */
export async function stripeEventsProcessed(db: Db, eventIds: readonly string[]): Promise<Map<string, boolean>> {
  if (eventIds.length === 0) return new Map();
  const rows = await db.selectFrom('stripeEvents').select(['eventId', 'processedAt', 'attention']).where('eventId', 'in', eventIds).execute();
  return new Map(rows.map((r) => [r.eventId, r.processedAt !== null || r.attention !== null]));
}

/** A Stripe event Berth did not read, as recorded for an operator. */
export interface AttentionRow {
  eventId: string;
  type: string;
  created: Date;
  apiVersion: string | null;
  /** Why it was not read (the API version, or which field had an unexpected shape). */
  attention: string;
}

/**
 * Records an event Berth refused to read, once (a redelivery keeps the first reason). An event id
 * already recorded as received is left as it is: its effect exists.
 */
export async function recordStripeEventNeedingAttention(db: Db, row: AttentionRow): Promise<void> {
  await db.insertInto('stripeEvents').values(row).onConflict((oc) => oc.column('eventId').doNothing()).execute();
}

/** Events recorded as needing attention, newest first (what the runbook's operator looks at). */
export async function listStripeEventsNeedingAttention(db: Db, limit = 100): Promise<{ eventId: string; type: string; apiVersion: string | null; attention: string; receivedAt: Date }[]> {
  const rows = await db.selectFrom('stripeEvents').select(['eventId', 'type', 'apiVersion', 'attention', 'receivedAt'])
    .where('attention', 'is not', null).orderBy('receivedAt', 'desc').limit(limit).execute();
  return rows.map((r) => ({ ...r, attention: r.attention ?? '' }));
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

import type { Db, StripeEvent } from '../database.ts';

/**
 * Records a Stripe event id. True if it is new (this delivery should take effect), false if the id
 * was seen before (a retry or duplicate: acknowledge and ignore). Invariant 4 (docs/invariants.md).
 */
export async function insertStripeEventIfNew(db: Db, event: { eventId: string; type: string; created: Date }): Promise<boolean> {
  const row = await db
    .insertInto('stripeEvents')
    .values(event)
    .onConflict((oc) => oc.column('eventId').doNothing())
    .returning('eventId')
    .executeTakeFirst();
  return row !== undefined;
}

export async function markStripeEventProcessed(db: Db, eventId: string, at: Date = new Date()): Promise<void> {
  await db.updateTable('stripeEvents').set({ processedAt: at }).where('eventId', '=', eventId).where('processedAt', 'is', null).execute();
}

export async function findStripeEvent(db: Db, eventId: string): Promise<StripeEvent | undefined> {
  return db.selectFrom('stripeEvents').selectAll().where('eventId', '=', eventId).executeTakeFirst();
}

/** Events accepted but not yet handed on (e.g. the signal to the workflow failed), oldest first. */
export async function listUnprocessedStripeEvents(db: Db, limit = 100): Promise<StripeEvent[]> {
  return db.selectFrom('stripeEvents').selectAll().where('processedAt', 'is', null).orderBy('receivedAt').limit(limit).execute();
}

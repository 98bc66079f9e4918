import { sql } from 'kysely';
import type { Db, Invoice, NewInvoice } from '../database.ts';

/** An invoice as mirrored from Stripe (integer minor units); the database fills in the rest. */
export type InvoiceRecord = Omit<NewInvoice, 'id'>;

// A later status never goes back to an earlier one, whatever order Stripe's events arrive in.
const rank = (ref: string) => sql<number>`case ${sql.ref(ref)} when 'draft' then 0 when 'open' then 1 when 'uncollectible' then 2 else 3 end`;

/**
 * Inserts or refreshes an invoice mirrored from Stripe, keyed by its Stripe id. A refresh that would
 * move the status backwards (a late 'open' after 'paid') is ignored: then nothing is returned.
 */
export async function upsertInvoice(db: Db, invoice: InvoiceRecord): Promise<Invoice | undefined> {
  if (!Number.isSafeInteger(invoice.amountMinor)) {
    throw new RangeError(`invoice ${invoice.stripeInvoiceId}: amountMinor must be an integer number of minor units`);
  }
  return db
    .insertInto('invoices')
    .values({ ...invoice, currency: invoice.currency.toLowerCase() })
    .onConflict((oc) =>
      oc
        .column('stripeInvoiceId')
        .doUpdateSet((eb) => ({
          status: eb.ref('excluded.status'),
          amountMinor: eb.ref('excluded.amountMinor'),
          hostedInvoiceUrl: eb.fn.coalesce('excluded.hostedInvoiceUrl', 'invoices.hostedInvoiceUrl'),
        }))
        .where(sql<boolean>`${rank('excluded.status')} >= ${rank('invoices.status')}`),
    )
    .returningAll()
    .executeTakeFirst();
}

/** A user's invoices, newest first (the billing page). */
export async function listInvoicesOfUser(db: Db, userId: string, limit = 50): Promise<Invoice[]> {
  return db.selectFrom('invoices').selectAll().where('userId', '=', userId).orderBy('createdAt', 'desc').limit(limit).execute();
}

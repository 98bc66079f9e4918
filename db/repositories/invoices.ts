import type { Db, Invoice, InvoiceStatus } from '../database.ts';

export interface InvoiceRecord {
  userId: string;
  stripeInvoiceId: string;
  stripeSubscriptionId: string | null;
  /** Integer minor units (cents). */
  amountMinor: number;
  currency: string;
  status: InvoiceStatus;
  periodStart: Date | null;
  periodEnd: Date | null;
  hostedInvoiceUrl: string | null;
  createdAt?: Date;
}

/** Inserts or refreshes an invoice from Stripe, keyed by its Stripe id. */
export async function upsertInvoice(db: Db, invoice: InvoiceRecord): Promise<Invoice> {
  if (!Number.isSafeInteger(invoice.amountMinor)) {
    throw new RangeError(`invoice ${invoice.stripeInvoiceId}: amountMinor must be an integer number of minor units`);
  }
  const { userId: _userId, stripeInvoiceId: _id, createdAt: _createdAt, ...refresh } = invoice;
  return db
    .insertInto('invoices')
    .values({ ...invoice, currency: invoice.currency.toLowerCase() })
    .onConflict((oc) => oc.column('stripeInvoiceId').doUpdateSet({ ...refresh, currency: invoice.currency.toLowerCase() }))
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** A user's invoices, newest first (the billing page). */
export async function listInvoicesOfUser(db: Db, userId: string, limit = 50): Promise<Invoice[]> {
  return db.selectFrom('invoices').selectAll().where('userId', '=', userId).orderBy('createdAt', 'desc').limit(limit).execute();
}

import type Stripe from 'stripe';
import type { Db } from '../../db/database.ts';
import { invoiceSnapshot } from './normalize.ts';
import { describeShapeError, invoiceShape } from './stripe-shapes.ts';
import { findStripeCustomerId, upsertInvoiceInOrder } from './store.ts';

/**
 * Mirrors a user's Stripe invoices into the invoices table (webhooks keep it current; this
 * catches up after an outage or for a new billing page). Returns how many were written.
 */
export async function syncInvoices(deps: { stripe: Stripe; db: Db }, userId: string, opts: { max?: number } = {}): Promise<number> {
  const customer = await findStripeCustomerId(deps.db, userId);
  if (!customer) return 0;
  let written = 0;
  for await (const invoice of deps.stripe.invoices.list({ customer, limit: 100 })) {
    if (invoice.status === null) continue;
    // Requests are pinned to the package's API version, so this parses unless Stripe broke it.
    const parsed = invoiceShape.safeParse(invoice);
    if (!parsed.success) throw new Error(`Stripe invoice ${invoice.id} has an unexpected shape: ${describeShapeError(parsed.error)}`);
    await upsertInvoiceInOrder(deps.db, userId, invoiceSnapshot(parsed.data));
    written += 1;
    if (written >= (opts.max ?? 240)) break;
  }
  return written;
}

import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely';

/** Stripe's invoice statuses. */
export const invoiceStatuses = ['draft', 'open', 'paid', 'uncollectible', 'void'] as const;
export type InvoiceStatus = (typeof invoiceStatuses)[number];

/** An invoice mirrored from Stripe. Money is an integer count of minor units (cents), never a float. */
export interface InvoicesTable {
  id: Generated<string>;
  userId: string;
  stripeInvoiceId: string;
  stripeSubscriptionId: string | null;
  amountMinor: number;
  /** ISO 4217, lower case as Stripe sends it ('eur'). */
  currency: string;
  status: InvoiceStatus;
  periodStart: Date | null;
  periodEnd: Date | null;
  hostedInvoiceUrl: string | null;
  createdAt: ColumnType<Date, Date | undefined, never>;
}

export type Invoice = Selectable<InvoicesTable>;
export type NewInvoice = Insertable<InvoicesTable>;
export type InvoiceUpdate = Updateable<InvoicesTable>;

import type { ColumnType, Insertable, Selectable } from 'kysely';

/** Every Stripe event id we accepted, so each event takes effect once (invariant 4). */
export interface StripeEventsTable {
  eventId: string;
  type: string;
  /** The event's own creation time from Stripe, used to ignore stale events. */
  created: Date;
  receivedAt: ColumnType<Date, Date | undefined, never>;
  processedAt: Date | null;
}

export type StripeEvent = Selectable<StripeEventsTable>;
export type NewStripeEvent = Insertable<StripeEventsTable>;

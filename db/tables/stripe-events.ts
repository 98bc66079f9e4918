import type { ColumnType, Insertable, Selectable } from 'kysely';

/** Every Stripe event id we accepted, so each event takes effect once (invariant 4, docs/invariants.md). */
export interface StripeEventsTable {
  eventId: string;
  type: string;
  /** The event's own creation time from Stripe, used to ignore stale events. */
  created: Date;
  receivedAt: ColumnType<Date, Date | undefined, never>;
  processedAt: Date | null;
  /** The event's `api_version`, recorded for events Berth refused to read. */
  apiVersion: ColumnType<string | null, string | null | undefined, string | null>;
  /** Why Berth did not read the event (unsupported API version, unexpected shape): an operator must look. */
  attention: ColumnType<string | null, string | null | undefined, string | null>;
}

export type StripeEvent = Selectable<StripeEventsTable>;
export type NewStripeEvent = Insertable<StripeEventsTable>;

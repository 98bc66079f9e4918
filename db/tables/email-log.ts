import type { ColumnType, Generated, Insertable, Selectable } from 'kysely';

export const emailProviders = ['smtp', 'resend'] as const;
export type EmailProvider = (typeof emailProviders)[number];

export const emailStatuses = ['sending', 'sent', 'failed'] as const;
export type EmailStatus = (typeof emailStatuses)[number];

/**
 * One notification, keyed by an idempotency key (customer, kind, billing period): a key can be
 * claimed once, so each notification is sent once (invariant 3, docs/invariants.md).
 */
export interface EmailLogTable {
  id: Generated<string>;
  idempotencyKey: string;
  userId: string | null;
  kind: string;
  recipient: string;
  subject: string;
  provider: EmailProvider;
  /** The provider's message id once sent. */
  providerId: string | null;
  status: ColumnType<EmailStatus, EmailStatus | undefined, EmailStatus>;
  error: string | null;
  /** How many times the key was claimed for sending (1 unless a failed send was retried). */
  attempts: ColumnType<number, number | undefined, number>;
  createdAt: ColumnType<Date, Date | undefined, never>;
  claimedAt: ColumnType<Date, Date | undefined, Date>;
  sentAt: Date | null;
}

export type EmailLogEntry = Selectable<EmailLogTable>;
export type NewEmailLogEntry = Insertable<EmailLogTable>;

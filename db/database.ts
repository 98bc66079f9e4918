import type { Kysely } from 'kysely';
import type { AuditLogTable } from './tables/audit-log.ts';
import type { BackupAttemptsTable } from './tables/backup-attempts.ts';
import type { BackupsTable } from './tables/backups.ts';
import type { CloudAssignmentsTable } from './tables/cloud-assignments.ts';
import type { CustomersTable } from './tables/customers.ts';
import type { EmailLogTable } from './tables/email-log.ts';
import type { EncryptedSecretsTable } from './tables/encrypted-secrets.ts';
import type { InvoicesTable } from './tables/invoices.ts';
import type { MailOutboxTable } from './tables/mail-outbox.ts';
import type { ServersTable } from './tables/servers.ts';
import type { SessionsTable } from './tables/sessions.ts';
import type { StripeEventsTable } from './tables/stripe-events.ts';
import type { UsersTable } from './tables/users.ts';

/**
 * Berth's database as Kysely sees it: one interface per table (db/tables/). Column names are
 * camelCase here and snake_case in PostgreSQL; createDb's CamelCasePlugin translates.
 */
export interface Database {
  users: UsersTable;
  sessions: SessionsTable;
  customers: CustomersTable;
  servers: ServersTable;
  backups: BackupsTable;
  backupAttempts: BackupAttemptsTable;
  invoices: InvoicesTable;
  stripeEvents: StripeEventsTable;
  emailLog: EmailLogTable;
  auditLog: AuditLogTable;
  encryptedSecrets: EncryptedSecretsTable;
  mailOutbox: MailOutboxTable;
  cloudAssignments: CloudAssignmentsTable;
}

/** What repository functions take first: the database, or a transaction on it (a Transaction is a Kysely). */
export type Db = Kysely<Database>;

export type * from './tables/audit-log.ts';
export type * from './tables/backup-attempts.ts';
export type * from './tables/backups.ts';
export type * from './tables/cloud-assignments.ts';
export type * from './tables/customers.ts';
export type * from './tables/email-log.ts';
export type * from './tables/encrypted-secrets.ts';
export type * from './tables/invoices.ts';
export type * from './tables/mail-outbox.ts';
export type * from './tables/servers.ts';
export type * from './tables/sessions.ts';
export type * from './tables/stripe-events.ts';
export type * from './tables/users.ts';

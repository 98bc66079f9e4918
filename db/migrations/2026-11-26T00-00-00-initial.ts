/* eslint-disable @typescript-eslint/no-explicit-any -- a migration takes Kysely<any>: it must not depend on today's Database type. */
import { sql, type Kysely } from 'kysely';

// Migrations are frozen history: they spell out names and values instead of importing them from the
// application (db/tables/*), so a later change there cannot rewrite what this migration did.

const customerStages = ['awaiting_payment', 'provisioning', 'active', 'idle', 'past_due', 'expiring', 'expired', 'restoring', 'purged'];
const plans = ['starter', 'pro', 'enterprise'];
const serverStatuses = ['initializing', 'starting', 'running', 'stopping', 'off', 'deleting', 'migrating', 'rebuilding', 'unknown'];
const invoiceStatuses = ['draft', 'open', 'paid', 'uncollectible', 'void'];

/** `column in ('a', 'b', ...)` for a CHECK constraint. */
function oneOf(column: string, values: readonly string[]) {
  return sql`${sql.ref(column)} in (${sql.join(values.map((v) => sql.lit(v)))})`;
}

const uuidPk = sql`gen_random_uuid()`;
const now = sql`now()`;

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('users')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(uuidPk))
    .addColumn('email', 'text', (c) => c.notNull().check(sql`email = btrim(email) and email like '%_@_%'`))
    .addColumn('password_hash', 'text', (c) => c.notNull())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('email_verified_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(now))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(now))
    .execute();
  // Case-insensitive uniqueness; lookups use lower(email) too, so this index serves them.
  await db.schema.createIndex('users_email_lower_key').unique().on('users').expression(sql`lower(email)`).execute();

  await db.schema
    .createTable('sessions')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(uuidPk))
    .addColumn('user_id', 'uuid', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('token_hash', 'text', (c) => c.notNull().unique())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(now))
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addColumn('last_seen_at', 'timestamptz', (c) => c.notNull().defaultTo(now))
    .execute();
  await db.schema.createIndex('sessions_user_id_idx').on('sessions').column('user_id').execute();
  await db.schema.createIndex('sessions_expires_at_idx').on('sessions').column('expires_at').execute();

  await db.schema
    .createTable('customers')
    .addColumn('user_id', 'uuid', (c) => c.primaryKey().references('users.id').onDelete('cascade'))
    .addColumn('plan', 'text', (c) => c.check(oneOf('plan', plans)))
    .addColumn('stage', 'text', (c) => c.notNull().defaultTo('awaiting_payment').check(oneOf('stage', customerStages)))
    .addColumn('access_ends_at', 'timestamptz')
    .addColumn('cancel_at_period_end', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('needs_attention', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('last_active_at', 'timestamptz')
    .addColumn('stripe_customer_id', 'text', (c) => c.unique())
    .addColumn('stripe_subscription_id', 'text', (c) => c.unique())
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(now))
    .execute();
  await db.schema.createIndex('customers_stage_idx').on('customers').column('stage').execute();
  await db.schema.createIndex('customers_needs_attention_idx').on('customers').column('user_id').where(sql.ref('needs_attention'), '=', true).execute();

  await db.schema
    .createTable('servers')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(uuidPk))
    .addColumn('user_id', 'uuid', (c) => c.notNull().references('users.id'))
    .addColumn('provider_id', 'bigint', (c) => c.notNull().unique())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('labels', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`).check(sql`jsonb_typeof(labels) = 'object'`))
    .addColumn('ipv4', sql`inet`)
    .addColumn('server_type', 'text', (c) => c.notNull())
    .addColumn('location', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull().check(oneOf('status', serverStatuses)))
    .addColumn('host_key_fingerprint', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(now))
    .addColumn('deleted_at', 'timestamptz')
    .execute();
  // Invariant 2 (docs/invariants.md): at most one live (not deleted) server per customer, whatever retries happen.
  await db.schema.createIndex('servers_one_live_per_user').unique().on('servers').column('user_id').where(sql.ref('deleted_at'), 'is', null).execute();
  await db.schema.createIndex('servers_user_id_idx').on('servers').columns(['user_id', 'created_at desc']).execute();

  await db.schema
    .createTable('backups')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(uuidPk))
    .addColumn('user_id', 'uuid', (c) => c.notNull().references('users.id'))
    .addColumn('server_id', 'uuid', (c) => c.references('servers.id').onDelete('set null'))
    .addColumn('kind', 'text', (c) => c.notNull().check(oneOf('kind', ['full', 'incremental'])))
    .addColumn('parent_id', 'uuid', (c) => c.references('backups.id'))
    .addColumn('size_bytes', 'bigint', (c) => c.check(sql`size_bytes >= 0`))
    .addColumn('sha256', 'text', (c) => c.check(sql`sha256 ~ '^[0-9a-f]{64}$'`))
    .addColumn('object_key', 'text', (c) => c.notNull().unique())
    .addColumn('encryption_key_id', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull().defaultTo('pending').check(oneOf('status', ['pending', 'completed', 'failed', 'deleted'])))
    .addColumn('manifest', 'jsonb')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(now))
    .addColumn('verified_at', 'timestamptz')
    .addColumn('expires_at', 'timestamptz')
    // An incremental backup needs the backup it builds on; a full one has none.
    .addCheckConstraint('backups_parent_matches_kind', sql`(kind = 'full') = (parent_id is null)`)
    // Completed means size and checksum are known; verified implies completed-or-later.
    .addCheckConstraint('backups_completed_has_checksum', sql`status <> 'completed' or (size_bytes is not null and sha256 is not null)`)
    .addCheckConstraint('backups_verified_has_checksum', sql`verified_at is null or (size_bytes is not null and sha256 is not null)`)
    .execute();
  await db.schema.createIndex('backups_user_created_idx').on('backups').columns(['user_id', 'created_at desc']).execute();
  await db.schema.createIndex('backups_parent_id_idx').on('backups').column('parent_id').execute();
  await db.schema.createIndex('backups_expiring_idx').on('backups').column('expires_at').where(sql.ref('status'), '=', 'completed').execute();

  await db.schema
    .createTable('invoices')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(uuidPk))
    .addColumn('user_id', 'uuid', (c) => c.notNull().references('users.id'))
    .addColumn('stripe_invoice_id', 'text', (c) => c.notNull().unique())
    .addColumn('stripe_subscription_id', 'text')
    // Integer minor units (cents): money is never a float.
    .addColumn('amount_minor', 'bigint', (c) => c.notNull())
    .addColumn('currency', sql`char(3)`, (c) => c.notNull().check(sql`currency ~ '^[a-z]{3}$'`))
    .addColumn('status', 'text', (c) => c.notNull().check(oneOf('status', invoiceStatuses)))
    .addColumn('period_start', 'timestamptz')
    .addColumn('period_end', 'timestamptz')
    .addColumn('hosted_invoice_url', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(now))
    .addCheckConstraint('invoices_period_ordered', sql`period_start is null or period_end is null or period_start <= period_end`)
    .execute();
  await db.schema.createIndex('invoices_user_created_idx').on('invoices').columns(['user_id', 'created_at desc']).execute();

  await db.schema
    .createTable('stripe_events')
    .addColumn('event_id', 'text', (c) => c.primaryKey())
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('created', 'timestamptz', (c) => c.notNull())
    .addColumn('received_at', 'timestamptz', (c) => c.notNull().defaultTo(now))
    .addColumn('processed_at', 'timestamptz')
    .execute();
  await db.schema.createIndex('stripe_events_unprocessed_idx').on('stripe_events').column('received_at').where(sql.ref('processed_at'), 'is', null).execute();

  await db.schema
    .createTable('email_log')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(uuidPk))
    .addColumn('idempotency_key', 'text', (c) => c.notNull().unique())
    .addColumn('user_id', 'uuid', (c) => c.references('users.id').onDelete('set null'))
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('recipient', 'text', (c) => c.notNull())
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('provider', 'text', (c) => c.notNull().check(oneOf('provider', ['smtp', 'resend'])))
    .addColumn('provider_id', 'text')
    .addColumn('status', 'text', (c) => c.notNull().defaultTo('sending').check(oneOf('status', ['sending', 'sent', 'failed'])))
    .addColumn('error', 'text')
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(now))
    .addColumn('claimed_at', 'timestamptz', (c) => c.notNull().defaultTo(now))
    .addColumn('sent_at', 'timestamptz')
    .addCheckConstraint('email_log_sent_has_time', sql`(status = 'sent') = (sent_at is not null)`)
    .execute();
  await db.schema.createIndex('email_log_user_created_idx').on('email_log').columns(['user_id', 'created_at desc']).execute();

  await db.schema
    .createTable('audit_log')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('actor', 'text', (c) => c.notNull())
    .addColumn('action', 'text', (c) => c.notNull())
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('at', 'timestamptz', (c) => c.notNull().defaultTo(now))
    .addColumn('details', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .execute();
  await db.schema.createIndex('audit_log_subject_at_idx').on('audit_log').columns(['subject', 'at desc']).execute();

  await db.schema
    .createTable('encrypted_secrets')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(uuidPk))
    .addColumn('owner', 'uuid', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('purpose', 'text', (c) => c.notNull())
    .addColumn('ciphertext', 'bytea', (c) => c.notNull())
    .addColumn('key_id', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(now))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(now))
    .addUniqueConstraint('encrypted_secrets_owner_purpose_key', ['owner', 'purpose'])
    .execute();
  // Re-encrypting under a new master key walks the secrets still wrapped by the old one.
  await db.schema.createIndex('encrypted_secrets_key_id_idx').on('encrypted_secrets').column('key_id').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['encrypted_secrets', 'audit_log', 'email_log', 'stripe_events', 'invoices', 'backups', 'servers', 'customers', 'sessions', 'users']) {
    await db.schema.dropTable(table).execute();
  }
}

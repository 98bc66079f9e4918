/* eslint-disable @typescript-eslint/no-explicit-any -- a migration takes Kysely<any>: it must not depend on today's Database type. */
import { sql, type Kysely } from 'kysely';

/**
 * The lifecycle workflow writes a fuller projection than the first schema held (next deadline,
 * server summary, last backup, why it needs attention) and orders its writes by the workflow time
 * they reflect; audit entries written by retried activities need a key to be written once.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('customers')
    .addColumn('view', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('as_of', 'timestamptz')
    .addColumn('attention_reason', 'text')
    .execute();
  await db.schema.alterTable('audit_log').addColumn('idempotency_key', 'text').execute();
  await db.schema.createIndex('audit_log_idempotency_key_key').on('audit_log').column('idempotency_key').unique().execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('audit_log_idempotency_key_key').execute();
  await db.schema.alterTable('audit_log').dropColumn('idempotency_key').execute();
  await db.schema.alterTable('customers').dropColumn('view').dropColumn('as_of').dropColumn('attention_reason').execute();
}

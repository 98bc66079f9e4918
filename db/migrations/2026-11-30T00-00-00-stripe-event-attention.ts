/* eslint-disable @typescript-eslint/no-explicit-any -- a migration takes Kysely<any>: it must not depend on today's Database type. */
import { sql, type Kysely } from 'kysely';

/**
 * A Stripe event Berth cannot read (an API version or shape it does not support) is acknowledged
 * and kept with its version and the reason, for an operator; reconciliation skips it.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('stripe_events').addColumn('api_version', 'text').addColumn('attention', 'text').execute();
  await db.schema.createIndex('stripe_events_attention_idx').on('stripe_events').column('received_at').where(sql.ref('attention'), 'is not', null).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('stripe_events_attention_idx').execute();
  await db.schema.alterTable('stripe_events').dropColumn('api_version').dropColumn('attention').execute();
}

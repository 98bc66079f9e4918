/* eslint-disable @typescript-eslint/no-explicit-any -- a migration takes Kysely<any>: it must not depend on today's Database type. */
import { sql, type Kysely } from 'kysely';

/**
 * Sessions remember when their password was last typed: opening a terminal or changing the model
 * API key needs a recent one. Existing sessions count as authenticated when they began.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('sessions').addColumn('authenticated_at', 'timestamptz').execute();
  await sql`update sessions set authenticated_at = created_at`.execute(db);
  await db.schema.alterTable('sessions').alterColumn('authenticated_at', (c) => c.setNotNull()).execute();
  await db.schema.alterTable('sessions').alterColumn('authenticated_at', (c) => c.setDefault(sql`now()`)).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('sessions').dropColumn('authenticated_at').execute();
}

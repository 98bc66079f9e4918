/* eslint-disable @typescript-eslint/no-explicit-any -- a migration takes Kysely<any>: it must not depend on today's Database type. */
import type { Kysely } from 'kysely';

/**
 * A backup's data key re-wrapped under a newer master key by the re-encryption job (JSON: key id,
 * nonce, wrapped key). The object in storage keeps the header it was written with; once this is set,
 * encryption_key_id names the newer key, and the older one can retire.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('backups').addColumn('data_key', 'text').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('backups').dropColumn('data_key').execute();
}

/* eslint-disable @typescript-eslint/no-explicit-any -- a migration takes Kysely<any>: it must not depend on today's Database type. */
import { sql, type Kysely } from 'kysely';

/**
 * A backup may be attempted more than once at the same time (a timed-out attempt still running
 * beside its retry): each attempt writes its own object, a backup row is owned by one attempt, and
 * every attempt is recorded before it creates anything in storage, so what a dead attempt left can
 * be found and removed without touching a live one's.
 */
export async function up(db: Kysely<any>): Promise<void> {
  // The attempt whose object the row names; only it may complete or fail the row.
  await db.schema.alterTable('backups').addColumn('attempt_id', 'uuid').execute();
  await db.schema
    .createTable('backup_attempts')
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    .addColumn('backup_id', 'uuid', (c) => c.notNull().references('backups.id'))
    .addColumn('object_key', 'text', (c) => c.notNull().unique())
    .addColumn('started_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('finished_at', 'timestamptz')
    .addColumn('outcome', 'text', (c) => c.check(sql`outcome in ('completed', 'failed', 'superseded', 'swept')`))
    .addCheckConstraint('backup_attempts_finished_has_outcome', sql`(finished_at is null) = (outcome is null)`)
    .execute();
  await db.schema.createIndex('backup_attempts_backup_id_idx').on('backup_attempts').column('backup_id').execute();
  await db.schema.createIndex('backup_attempts_unfinished_idx').on('backup_attempts').column('started_at').where(sql.ref('finished_at'), 'is', null).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('backup_attempts').execute();
  await db.schema.alterTable('backups').dropColumn('attempt_id').execute();
}

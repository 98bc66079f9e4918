/* eslint-disable @typescript-eslint/no-explicit-any -- a migration takes Kysely<any>: it must not depend on today's Database type. */
import { sql, type Kysely } from 'kysely';

/**
 * Customers' servers are spread over several cloud projects (each with its own server limit and
 * request budget): which project holds a customer's server is written down before it is created, so
 * that a retry looks for it in the same project.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('cloud_assignments')
    .addColumn('user_id', 'uuid', (c) => c.primaryKey().references('users.id').onDelete('cascade'))
    .addColumn('project', 'text', (c) => c.notNull())
    .addColumn('assigned_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('cloud_assignments_project_idx').on('cloud_assignments').column('project').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('cloud_assignments').execute();
}

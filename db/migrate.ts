import type { Kysely } from 'kysely';
import type { Database } from './database.ts';
import { Migrator, NO_MIGRATIONS, type MigrationResult, type MigrationResultSet } from 'kysely/migration';
import { schemaOf } from './client.ts';
import { migrationProvider } from './migrations/index.ts';

export type { MigrationResult };

export interface MigrateOptions {
  /**
   * Schema holding the migration bookkeeping tables; default: the schema the db was created for.
   * It must be given explicitly to Kysely: otherwise its "does the table exist" check sees other
   * schemas' kysely_migration tables (e.g. another test suite's) and skips creating ours.
   */
  schema?: string;
}

/** A migration run that failed: which migration, which direction, and PostgreSQL's reason. */
export class MigrationError extends Error {
  readonly results: readonly MigrationResult[];
  constructor(message: string, results: readonly MigrationResult[], cause: unknown) {
    super(message, { cause });
    this.name = 'MigrationError';
    this.results = results;
  }
}

export function createMigrator(db: Kysely<Database>, opts: MigrateOptions = {}): Migrator {
  return new Migrator({ db, provider: migrationProvider, migrationTableSchema: opts.schema ?? schemaOf(db) });
}

/** Applies every pending migration. Returns what ran; throws MigrationError if one failed. */
export async function migrateToLatest(db: Kysely<Database>, opts?: MigrateOptions): Promise<MigrationResult[]> {
  return unwrap('migrate to latest', await createMigrator(db, opts).migrateToLatest());
}

/** Reverts the most recent migration (nothing if none is applied). */
export async function migrateDown(db: Kysely<Database>, opts?: MigrateOptions): Promise<MigrationResult[]> {
  return unwrap('migrate down', await createMigrator(db, opts).migrateDown());
}

/** Reverts every applied migration, newest first, leaving an empty schema (bookkeeping aside). */
export async function migrateAllDown(db: Kysely<Database>, opts?: MigrateOptions): Promise<MigrationResult[]> {
  return unwrap('migrate all down', await createMigrator(db, opts).migrateTo(NO_MIGRATIONS));
}

function unwrap(what: string, { error, results = [] }: MigrationResultSet): MigrationResult[] {
  if (error === undefined) return results;
  const failed = results.find((r) => r.status === 'Error');
  const reason = describeError(error);
  const where = failed ? `migration ${failed.migrationName} (${failed.direction.toLowerCase()})` : what;
  throw new MigrationError(`${where} failed: ${reason}`, results, error);
}

/** A one-line reason, also for errors whose message is empty (e.g. AggregateError from connect). */
export function describeError(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) return error.errors.map(describeError).join('; ');
  if (error instanceof Error) return error.message || (error as NodeJS.ErrnoException).code || error.name;
  return String(error);
}

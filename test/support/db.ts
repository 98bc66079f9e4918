/**
 * A PostgreSQL schema of its own for each test suite, on the PostgreSQL the integration tier's global
 * setup started (DATABASE_URL). Suites run in parallel without seeing each other's rows, and a
 * suite's schema is dropped when it ends.
 */
import { randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll } from 'vitest';
import { createDb } from '../../db/client.ts';
import type { Database } from '../../db/database.ts';
import { migrateToLatest } from '../../db/migrate.ts';

export interface TestDatabase {
  /** Kysely on the suite's schema (search_path = that schema only). */
  db: Kysely<Database>;
  schema: string;
  url: string;
  /** Closes the pool and drops the schema with everything in it. */
  drop(): Promise<void>;
}

/** The shared test PostgreSQL, as the integration tier's global setup exported it. */
export function testDatabaseUrl(): string {
  const url = process.env.DATABASE_URL;
  if (!url) {
    throw new Error('DATABASE_URL is not set: run integration tests through the integration project, whose global setup starts PostgreSQL');
  }
  return url;
}

/**
 * Creates a fresh schema named after `name` (plus a random suffix) and, unless `migrate: false`,
 * migrates it to the latest version.
 */
export async function createTestDatabase(opts: { name?: string; migrate?: boolean; max?: number } = {}): Promise<TestDatabase> {
  const url = testDatabaseUrl();
  const slug = (opts.name ?? 'suite').toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_+|_+$/g, '').slice(0, 40);
  const schema = `test_${slug}_${randomBytes(4).toString('hex')}`;
  await admin(url, `create schema ${pg.escapeIdentifier(schema)}`);
  const db = createDb(url, { schema, max: opts.max ?? 4 });
  let dropped = false;
  const drop = async () => {
    if (dropped) return;
    dropped = true;
    await db.destroy();
    await admin(url, `drop schema if exists ${pg.escapeIdentifier(schema)} cascade`);
  };
  try {
    if (opts.migrate !== false) await migrateToLatest(db);
  } catch (err) {
    await drop();
    throw err;
  }
  return { db, schema, url, drop };
}

/**
 * For a suite: a migrated schema created before its tests and dropped after them. Read `.db` inside
 * tests and hooks, not at module load.
 */
export function useTestDatabase(opts: { name?: string; migrate?: boolean } = {}): TestDatabase {
  let current: TestDatabase | undefined;
  const missing = () => new Error('the test database exists only inside tests and hooks (useTestDatabase)');
  beforeAll(async () => {
    current = await createTestDatabase(opts);
  });
  afterAll(async () => {
    await current?.drop();
  });
  return {
    get db() {
      if (!current) throw missing();
      return current.db;
    },
    get schema() {
      if (!current) throw missing();
      return current.schema;
    },
    get url() {
      return testDatabaseUrl();
    },
    drop: async () => current?.drop(),
  };
}

/** One statement on a short-lived connection outside any suite schema (create/drop schema). */
async function admin(url: string, statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

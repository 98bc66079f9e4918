import { CamelCasePlugin, Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { Database } from './database.ts';

export interface CreateDbOptions {
  /**
   * PostgreSQL schema to work in (via search_path), e.g. one per test suite. The schema must exist;
   * nothing outside it is visible to unqualified names. Default: the server's search_path (public).
   */
  schema?: string;
  /** Pool size (default 10). */
  max?: number;
}

const schemaNames = new WeakMap<object, string>();

/** Schema names we put in search_path unquoted: lower-case identifiers only. */
const schemaNamePattern = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * A Kysely instance on a pg Pool for `url`. Column and table names are camelCase in TypeScript and
 * snake_case in PostgreSQL (CamelCasePlugin; keys inside jsonb values are left alone).
 * bigint columns come back as JS numbers (amounts in minor units, byte sizes: all far below 2^53).
 */
export function createDb(url: string, opts: CreateDbOptions = {}): Kysely<Database> {
  if (opts.schema !== undefined && !schemaNamePattern.test(opts.schema)) {
    throw new Error(`invalid schema name ${JSON.stringify(opts.schema)}: use lower-case letters, digits and _`);
  }
  const pool = new pg.Pool({
    connectionString: url,
    max: opts.max ?? 10,
    // A connection string with its own `options` parameter overrides this one (pg's rule).
    options: opts.schema ? `-c search_path=${opts.schema}` : undefined,
    types: { getTypeParser },
  });
  const db = new Kysely<Database>({
    dialect: new PostgresDialect({ pool }),
    plugins: [new CamelCasePlugin({ maintainNestedObjectKeys: true })],
  });
  schemaNames.set(db, opts.schema ?? 'public');
  return db;
}

/** The schema a createDb instance works in ('public' unless one was given). */
export function schemaOf(db: object): string {
  return schemaNames.get(db) ?? 'public';
}

const INT8_OID = 20;

function parseInt8(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new RangeError(`bigint ${value} does not fit a JS number exactly`);
  return n;
}

// Per pool, not pg.types.setTypeParser: other pg users in the process keep pg's defaults.
const getTypeParser = ((oid: number, format?: 'text' | 'binary') =>
  oid === INT8_OID && format !== 'binary' ? parseInt8 : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser;

/**
 * Proves: the production roles (scripts/compose/roles.sql, which docker-compose runs on a new cluster)
 * give least privilege on a real PostgreSQL. Migrations run as berth_owner; berth_app reads and writes
 * rows but cannot change the schema; Temporal's role and Berth's cannot reach each other's databases.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createDb } from '../../db/client.ts';
import { migrateToLatest } from '../../db/migrate.ts';
import { freePort } from '../../lib/process.ts';
import { rootDir } from '../../lib/paths.ts';
import { startPostgres, testSettings, type RunningPostgres } from '../../scripts/services/postgres.ts';

const run = promisify(execFile);
let cluster: RunningPostgres;
let dir: string;
let port: number;
const url = (user: string, db: string) => `postgres://${user}@127.0.0.1:${port}/${db}`;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'berth-roles-'));
  port = await freePort();
  cluster = await startPostgres({ dataDir: path.join(dir, 'pg'), port, sink: () => {}, settings: testSettings });
  // As docker-compose's init script does it (the local cluster's superuser is 'berth'; its app database 'berth_prod').
  await run('psql', ['-v', 'ON_ERROR_STOP=1', '-d', cluster.url.replace(/\/berth$/, '/postgres'), '-v', 'owner_password=o', '-v', 'app_password=a',
    '-v', 'temporal_password=t', '-v', 'app_db=berth_prod', '-f', path.join(rootDir, 'scripts/compose/roles.sql')]);
  const owner = createDb(url('berth_owner', 'berth_prod'), { max: 1 });
  try {
    await migrateToLatest(owner);
  } finally {
    await owner.destroy();
  }
});
afterAll(async () => {
  await cluster?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function as(user: string, db: string, sql: string): Promise<string> {
  const client = new pg.Client({ connectionString: url(user, db) });
  try {
    await client.connect();
    await client.query(sql);
    return 'ok';
  } catch (err) {
    return (err as Error).message;
  } finally {
    await client.end().catch(() => {});
  }
}

test('the app role reads and writes rows of every table', async () => {
  expect(await as('berth_app', 'berth_prod', "insert into users (email, password_hash, name) values ('a@example.com', 'x', 'A')")).toBe('ok');
  expect(await as('berth_app', 'berth_prod', "update users set name = 'B'")).toBe('ok');
  expect(await as('berth_app', 'berth_prod', 'select * from sessions, rate_limits, mail_outbox, encrypted_secrets limit 1')).toBe('ok');
  expect(await as('berth_app', 'berth_prod', 'delete from users')).toBe('ok');
  // Every table the migrations made, whichever migration made it.
  const client = new pg.Client({ connectionString: url('berth_owner', 'berth_prod') });
  await client.connect();
  try {
    const { rows } = await client.query<{ name: string; rows: boolean }>(
      // has_table_privilege with several privileges answers whether ANY is held: each is asked alone.
      `select table_name as name, ${['SELECT', 'INSERT', 'UPDATE', 'DELETE'].map((p) => `has_table_privilege('berth_app', 'public.' || table_name, '${p}')`).join(' and ')} as rows
       from information_schema.tables where table_schema = 'public'`);
    expect(rows.length).toBeGreaterThan(10);
    expect(rows.filter((r) => !r.rows && !r.name.startsWith('kysely_')).map((r) => r.name)).toEqual([]);
  } finally {
    await client.end();
  }
});

test('the app role cannot change the schema', async () => {
  expect(await as('berth_app', 'berth_prod', 'create table stolen (x int)')).toMatch(/permission denied for schema public/);
  expect(await as('berth_app', 'berth_prod', 'drop table users')).toMatch(/must be owner/);
  expect(await as('berth_app', 'berth_prod', 'alter table users add column x int')).toMatch(/must be owner/);
  expect(await as('berth_app', 'berth_prod', 'truncate users')).toMatch(/permission denied/);
});

test('Berth and Temporal cannot reach each other\'s databases', async () => {
  expect(await as('berth_app', 'temporal', 'select 1')).toMatch(/permission denied for database "temporal"/);
  expect(await as('berth_owner', 'temporal_visibility', 'select 1')).toMatch(/permission denied for database "temporal_visibility"/);
  expect(await as('temporal', 'berth_prod', 'select 1')).toMatch(/permission denied for database "berth_prod"/);
  expect(await as('temporal', 'temporal', 'create table t (x int)')).toBe('ok');
});

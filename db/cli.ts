import { z } from 'zod';
import { commonFields, loadConfigOrExit, localDefaults, productionRules } from '../lib/config.ts';
import { createDb } from './client.ts';
import { describeError, migrateAllDown, migrateDown, migrateToLatest, type MigrationResult } from './migrate.ts';

// `node db/cli.ts up|down|reset`: migrations against DATABASE_URL (the local default only in local mode).
// up = apply all pending, down = revert the latest one, reset = revert all then apply all.

const usage = 'usage: node db/cli.ts up|down|reset';
const command = process.argv[2];
if (command !== 'up' && command !== 'down' && command !== 'reset') {
  process.stderr.write(`${usage}\n`);
  process.exit(2);
}

const config = loadConfigOrExit(
  z.object({ BERTH_MODE: commonFields.BERTH_MODE, NODE_ENV: commonFields.NODE_ENV, DATABASE_URL: commonFields.DATABASE_URL })
    .superRefine(...productionRules({ devDefaults: { DATABASE_URL: localDefaults.DATABASE_URL } })),
  process.env, 'db');
const db = createDb(config.DATABASE_URL, { max: 1 });

function report(results: readonly MigrationResult[]): void {
  for (const r of results) process.stdout.write(`db: ${r.direction.toLowerCase()} ${r.migrationName}: ${r.status.toLowerCase()}\n`);
}

try {
  if (command === 'down') {
    const results = await migrateDown(db);
    report(results);
    if (results.length === 0) process.stdout.write('db: nothing to revert\n');
  } else {
    if (command === 'reset') report(await migrateAllDown(db));
    const results = await migrateToLatest(db);
    report(results);
    if (results.length === 0) process.stdout.write('db: already up to date\n');
  }
} catch (err) {
  const reason = describeError(err);
  const hint = /ECONNREFUSED|ENOTFOUND|does not exist/.test(reason) ? ' (is PostgreSQL running and DATABASE_URL right?)' : '';
  process.stderr.write(`db: ${reason}${hint}\n`);
  process.exitCode = 1;
} finally {
  await db.destroy();
}

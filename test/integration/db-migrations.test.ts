import { sql } from 'kysely';
import { afterAll, describe, expect, test } from 'vitest';
import { migrateAllDown, migrateDown, migrateToLatest } from '../../db/migrate.ts';
import { migrations } from '../../db/migrations/index.ts';
import { upsertInvoice } from '../../db/repositories/invoices.ts';
import { markServerDeleted, recordServer, type ServerRecord } from '../../db/repositories/servers.ts';
import { createUser, EmailTakenError, findUserByEmail } from '../../db/repositories/users.ts';
import { createTestDatabase, useTestDatabase, type TestDatabase } from '../support/db.ts';

const berthTables = [
  'audit_log', 'backup_attempts', 'backups', 'cloud_assignments', 'customers', 'email_log', 'encrypted_secrets', 'invoices', 'mail_outbox',
  'rate_limits', 'servers', 'sessions', 'stripe_events', 'users',
];
const bookkeeping = ['kysely_migration', 'kysely_migration_lock'];

async function tablesIn(t: TestDatabase): Promise<string[]> {
  const { rows } = await sql<{ name: string }>`
    select table_name as name from information_schema.tables where table_schema = ${t.schema} order by table_name`.execute(t.db);
  return rows.map((r) => r.name);
}

const names = Object.keys(migrations);

async function columnsOf(t: TestDatabase, table: string): Promise<string[]> {
  const { rows } = await sql<{ name: string }>`
    select column_name as name from information_schema.columns where table_schema = ${t.schema} and table_name = ${table}`.execute(t.db);
  return rows.map((r) => r.name);
}

describe('migrations on real PostgreSQL', () => {
  const suites: TestDatabase[] = [];
  afterAll(async () => {
    for (const t of suites) await t.drop();
  });

  test('migrate up, down to zero, and up again leaves the full schema each time', async () => {
    const t = await createTestDatabase({ name: 'migrations', migrate: false });
    suites.push(t);
    expect(await tablesIn(t)).toEqual([]);

    const up = await migrateToLatest(t.db);
    expect(up.map((r) => [r.migrationName, r.direction, r.status])).toEqual(names.map((n) => [n, 'Up', 'Success']));
    expect(await tablesIn(t)).toEqual([...berthTables, ...bookkeeping].sort());
    expect(await migrateToLatest(t.db)).toEqual([]);

    const down = await migrateAllDown(t.db);
    expect(down.map((r) => [r.migrationName, r.direction, r.status])).toEqual([...names].reverse().map((n) => [n, 'Down', 'Success']));
    expect(await tablesIn(t)).toEqual(bookkeeping);

    await migrateToLatest(t.db);
    expect(await tablesIn(t)).toEqual([...berthTables, ...bookkeeping].sort());

    // Step by step down: each migration undoes exactly its own part, the last leaves nothing.
    let undone = 0;
    const stepDownTo = async (name: string) => {
      while (names.indexOf(name) < names.length - 1 - undone) {
        expect((await migrateDown(t.db)).map((r) => r.status)).toEqual(['Success']);
        undone += 1;
      }
    };
    expect(await columnsOf(t, 'backups')).toContain('data_key');
    await stepDownTo('2026-12-01T00-00-01-throttle-and-mail-outbox');
    expect(await columnsOf(t, 'backups')).not.toContain('data_key');
    expect(await tablesIn(t)).toEqual(expect.arrayContaining(['mail_outbox', 'rate_limits']));
    await stepDownTo('2026-12-01T00-00-00-sessions-reauth');
    expect(await tablesIn(t)).not.toContain('mail_outbox');
    expect(await tablesIn(t)).not.toContain('rate_limits');
    expect(await columnsOf(t, 'sessions')).toContain('authenticated_at');
    await stepDownTo('2026-11-30T18-00-00-backup-attempts');
    expect(await columnsOf(t, 'sessions')).not.toContain('authenticated_at');
    expect(await columnsOf(t, 'backups')).toContain('attempt_id');
    await stepDownTo('2026-11-30T12-00-00-cloud-projects');
    expect(await tablesIn(t)).not.toContain('backup_attempts');
    expect(await columnsOf(t, 'backups')).not.toContain('attempt_id');
    expect(await tablesIn(t)).toContain('cloud_assignments');
    await stepDownTo('2026-11-30T00-00-00-stripe-event-attention');
    expect(await tablesIn(t)).not.toContain('cloud_assignments');
    expect(await columnsOf(t, 'stripe_events')).toEqual(expect.arrayContaining(['api_version', 'attention']));
    await stepDownTo('2026-11-26T12-00-00-lifecycle-projection');
    expect(await columnsOf(t, 'stripe_events')).not.toContain('attention');
    expect(await columnsOf(t, 'customers')).toContain('as_of');
    expect((await migrateDown(t.db)).map((r) => r.migrationName)).toEqual(['2026-11-26T12-00-00-lifecycle-projection']);
    undone += 1;
    expect(await columnsOf(t, 'customers')).not.toContain('as_of');
    expect(await tablesIn(t)).toEqual([...berthTables.filter((n) => !['cloud_assignments', 'backup_attempts', 'mail_outbox', 'rate_limits'].includes(n)), ...bookkeeping].sort());
    for (let i = undone; i < names.length; i++) expect((await migrateDown(t.db)).map((r) => r.status)).toEqual(['Success']);
    expect(await tablesIn(t)).toEqual(bookkeeping);
    expect(await migrateDown(t.db)).toEqual([]);
  });

  test("a suite's migrations are not fooled by another schema's bookkeeping tables", async () => {
    const first = await createTestDatabase({ name: 'first' });
    const second = await createTestDatabase({ name: 'second', migrate: false });
    suites.push(first, second);
    expect(await tablesIn(first)).toContain('users');
    expect(await migrateToLatest(second.db)).toHaveLength(names.length);
    expect(await tablesIn(second)).toEqual([...berthTables, ...bookkeeping].sort());
  });
});

describe('the schema enforces', () => {
  const t = useTestDatabase({ name: 'constraints' });
  const newUser = (email: string) => createUser(t.db, { email, passwordHash: 'argon2id$placeholder', name: 'Ada' });

  test('email uniqueness regardless of letter case, and lookups ignore case too', async () => {
    const ada = await newUser('Ada.Lovelace@Example.com');
    await expect(newUser('ada.lovelace@EXAMPLE.COM')).rejects.toBeInstanceOf(EmailTakenError);
    // The index itself refuses it, not only the repository function.
    await expect(
      t.db.insertInto('users').values({ email: 'ADA.LOVELACE@example.com', passwordHash: 'x', name: 'Imposter' }).execute(),
    ).rejects.toMatchObject({ code: '23505', constraint: 'users_email_lower_key' });
    const found = await findUserByEmail(t.db, '  ada.LOVELACE@example.com ');
    expect(found?.id).toBe(ada.id);
    expect(found?.email).toBe('Ada.Lovelace@Example.com');
  });

  test('invoice amounts are integers of minor units, never floats', async () => {
    const user = await newUser('billing@example.com');
    const { rows } = await sql<{ dataType: string }>`
      select data_type from information_schema.columns
      where table_schema = ${t.schema} and table_name = 'invoices' and column_name = 'amount_minor'`.execute(t.db);
    expect(rows).toEqual([{ dataType: 'bigint' }]);

    const invoice = {
      userId: user.id, stripeInvoiceId: 'in_1', stripeSubscriptionId: 'sub_1', amountMinor: 1999, currency: 'EUR',
      status: 'paid' as const, periodStart: new Date('2026-11-01T00:00:00Z'), periodEnd: new Date('2026-12-01T00:00:00Z'), hostedInvoiceUrl: null,
    };
    const stored = (await upsertInvoice(t.db, invoice))!;
    expect(stored.amountMinor).toBe(1999);
    expect(typeof stored.amountMinor).toBe('number');
    expect(stored.currency).toBe('eur');

    await expect(upsertInvoice(t.db, { ...invoice, stripeInvoiceId: 'in_2', amountMinor: 19.99 })).rejects.toThrow(/integer/);
    await expect(
      t.db.insertInto('invoices').values({ ...invoice, stripeInvoiceId: 'in_3', amountMinor: 19.99 }).execute(),
    ).rejects.toThrow(/invalid input syntax for type bigint/);
    await expect(upsertInvoice(t.db, { ...invoice, stripeInvoiceId: 'in_4', currency: 'e1r' })).rejects.toMatchObject({ code: '23514' });
  });

  test('at most one live server per customer; a deleted one does not count', async () => {
    const user = await newUser('servers@example.com');
    const other = await newUser('other@example.com');
    const server = (userId: string, providerId: number): ServerRecord => ({
      userId, providerId, name: `berth-${providerId}`, labels: { 'berth/customer': userId }, ipv4: '127.0.0.2',
      serverType: 'cx23', location: 'fsn1', status: 'running', hostKeyFingerprint: 'SHA256:abc',
    });
    const first = await recordServer(t.db, server(user.id, 101));
    expect(first.labels).toEqual({ 'berth/customer': user.id });
    // Recording the same provider server again (a retried activity) is not a second server.
    expect((await recordServer(t.db, server(user.id, 101))).id).toBe(first.id);
    await expect(recordServer(t.db, server(user.id, 102))).rejects.toMatchObject({ code: '23505', constraint: 'servers_one_live_per_user' });
    await recordServer(t.db, server(other.id, 103));

    await markServerDeleted(t.db, first.id);
    const replacement = await recordServer(t.db, server(user.id, 102));
    expect(replacement.deletedAt).toBeNull();
    await expect(recordServer(t.db, server(user.id, 104))).rejects.toMatchObject({ constraint: 'servers_one_live_per_user' });
  });

  test('enumerated values are checked by the database', async () => {
    const user = await newUser('checks@example.com');
    const reject = (query: { execute(): Promise<unknown> }) => expect(query.execute()).rejects.toMatchObject({ code: '23514' });
    await reject(t.db.insertInto('customers').values({ userId: user.id, stage: 'sleeping' as never }));
    await reject(t.db.insertInto('customers').values({ userId: user.id, plan: 'gold' as never }));
    await reject(
      t.db.insertInto('backups').values({ userId: user.id, serverId: null, kind: 'differential' as never, parentId: null, objectKey: 'k1', encryptionKeyId: 'local-1' }),
    );
    // An incremental backup must name its parent.
    await reject(t.db.insertInto('backups').values({ userId: user.id, serverId: null, kind: 'incremental', parentId: null, objectKey: 'k2', encryptionKeyId: 'local-1' }));
    // A completed backup must have its size and checksum.
    await reject(t.db.insertInto('backups').values({ userId: user.id, serverId: null, kind: 'full', parentId: null, objectKey: 'k3', encryptionKeyId: 'local-1', status: 'completed' }));
    await reject(
      t.db.insertInto('emailLog').values({ idempotencyKey: 'k', userId: user.id, kind: 'welcome', recipient: 'a@b.c', subject: 's', provider: 'carrier-pigeon' as never }),
    );
  });
});

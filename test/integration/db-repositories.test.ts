import { describe, expect, test } from 'vitest';
import { appendAudit, listAuditForSubject } from '../../db/repositories/audit-log.ts';
import { completeBackup, latestVerifiedBackup, listBackupsOfUser, listExpiredBackups, markBackupVerified, startBackup } from '../../db/repositories/backups.ts';
import { findCustomer, listCustomersByStage, upsertCustomer } from '../../db/repositories/customers.ts';
import { getEncryptedSecret, putEncryptedSecret } from '../../db/repositories/encrypted-secrets.ts';
import { createSession, deleteExpiredSessions, findLiveSession } from '../../db/repositories/sessions.ts';
import { findStripeEvent, insertStripeEventIfNew, markStripeEventProcessed } from '../../db/repositories/stripe-events.ts';
import { createUser } from '../../db/repositories/users.ts';
import { useTestDatabase } from '../support/db.ts';

const t = useTestDatabase({ name: 'repositories' });
let userCount = 0;
const newUser = () => createUser(t.db, { email: `user${++userCount}@example.com`, passwordHash: 'argon2id$placeholder', name: 'Grace' });
const sha = (c: string) => c.repeat(64);

describe('repositories', () => {
  test('a Stripe event takes effect once: only its first insert is new', async () => {
    const event = { eventId: 'evt_1', type: 'invoice.paid', created: new Date('2026-11-26T10:00:00Z') };
    expect(await insertStripeEventIfNew(t.db, event)).toBe(true);
    expect(await insertStripeEventIfNew(t.db, event)).toBe(false);
    expect(await insertStripeEventIfNew(t.db, { ...event, type: 'something.else' })).toBe(false);
    await markStripeEventProcessed(t.db, 'evt_1', new Date('2026-11-26T10:00:05Z'));
    expect(await findStripeEvent(t.db, 'evt_1')).toMatchObject({ type: 'invoice.paid', created: event.created, processedAt: new Date('2026-11-26T10:00:05Z') });
  });

  test('the customer projection upserts, changing only the fields given', async () => {
    const user = await newUser();
    const created = await upsertCustomer(t.db, user.id, { stage: 'provisioning', plan: 'pro' });
    expect(created).toMatchObject({ stage: 'provisioning', plan: 'pro', cancelAtPeriodEnd: false, needsAttention: false });
    const endsAt = new Date('2026-12-26T00:00:00Z');
    const updated = await upsertCustomer(t.db, user.id, { stage: 'active', accessEndsAt: endsAt });
    expect(updated).toMatchObject({ stage: 'active', plan: 'pro', accessEndsAt: endsAt });
    expect(updated.updatedAt.getTime()).toBeGreaterThanOrEqual(created.updatedAt.getTime());
    expect(await findCustomer(t.db, user.id)).toEqual(updated);
    expect((await listCustomersByStage(t.db, 'active')).map((c) => c.userId)).toContain(user.id);
  });

  test('audit entries append and read back newest first with their details', async () => {
    const subject = 'customer:audit-test';
    await appendAudit(t.db, { actor: 'operator:ops', action: 'approve-delete-without-backup', subject, details: { reason: 'customer asked', nested: { snake_key: 1 } } });
    await appendAudit(t.db, { actor: 'system', action: 'server.deleted', subject });
    const entries = await listAuditForSubject(t.db, subject);
    expect(entries.map((e) => e.action)).toEqual(['server.deleted', 'approve-delete-without-backup']);
    // jsonb keys come back exactly as written (no camelCase conversion inside values).
    expect(entries[1]?.details).toEqual({ reason: 'customer asked', nested: { snake_key: 1 } });
    expect(typeof entries[0]?.id).toBe('number');
  });

  test('only a completed and verified backup counts as the latest verified one', async () => {
    const user = await newUser();
    const base = { userId: user.id, serverId: null, encryptionKeyId: 'local-1' };
    const full = await startBackup(t.db, { ...base, kind: 'full', parentId: null, objectKey: `${user.id}/full-1`, expiresAt: new Date('2026-01-01T00:00:00Z') });
    expect((await startBackup(t.db, { ...base, kind: 'full', parentId: null, objectKey: `${user.id}/full-1` })).id).toBe(full.id);
    expect(await latestVerifiedBackup(t.db, user.id)).toBeUndefined();

    await completeBackup(t.db, full.id, { sizeBytes: 5 * 2 ** 40, sha256: sha('a'), manifest: { files: 3, openclaw_version: '1.0' } });
    expect(await latestVerifiedBackup(t.db, user.id)).toBeUndefined();
    await markBackupVerified(t.db, full.id);
    const verified = await latestVerifiedBackup(t.db, user.id);
    expect(verified).toMatchObject({ id: full.id, sizeBytes: 5 * 2 ** 40, manifest: { files: 3, openclaw_version: '1.0' } });

    const incremental = await startBackup(t.db, { ...base, kind: 'incremental', parentId: full.id, objectKey: `${user.id}/incr-1` });
    await completeBackup(t.db, incremental.id, { sizeBytes: 10, sha256: sha('b') });
    expect((await latestVerifiedBackup(t.db, user.id))?.id).toBe(full.id);
    expect((await listBackupsOfUser(t.db, user.id)).map((b) => b.id)).toEqual([incremental.id, full.id]);
    expect((await listExpiredBackups(t.db, new Date('2026-06-01T00:00:00Z'))).map((b) => b.id)).toContain(full.id);
  });

  test('sessions are found by token hash until they expire', async () => {
    const user = await newUser();
    const now = new Date('2026-11-26T12:00:00Z');
    await createSession(t.db, { userId: user.id, tokenHash: `hash-${user.id}`, expiresAt: new Date('2026-11-27T12:00:00Z') });
    expect((await findLiveSession(t.db, `hash-${user.id}`, now))?.user.id).toBe(user.id);
    expect(await findLiveSession(t.db, `hash-${user.id}`, new Date('2026-11-28T00:00:00Z'))).toBeUndefined();
    expect(await deleteExpiredSessions(t.db, new Date('2026-11-28T00:00:00Z'))).toBeGreaterThanOrEqual(1);
    expect(await findLiveSession(t.db, `hash-${user.id}`, now)).toBeUndefined();
  });

  test('one encrypted secret per owner and purpose; storing again replaces it', async () => {
    const user = await newUser();
    await putEncryptedSecret(t.db, { owner: user.id, purpose: 'ssh-private-key', ciphertext: Buffer.from([1, 2, 3]), keyId: 'k1' });
    await putEncryptedSecret(t.db, { owner: user.id, purpose: 'ssh-private-key', ciphertext: Buffer.from([4, 5]), keyId: 'k2' });
    const stored = await getEncryptedSecret(t.db, user.id, 'ssh-private-key');
    expect(stored?.ciphertext).toEqual(Buffer.from([4, 5]));
    expect(stored?.keyId).toBe('k2');
  });
});

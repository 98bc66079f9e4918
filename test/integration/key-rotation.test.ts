/**
 * Proves: the master key can be rotated and the old one retired without losing anything. Secrets
 * (SSH key, gateway token, model API key), a queued mail and a backup are sealed under k1; k2 becomes
 * current; the re-encryption job moves them; k1 retires (only once unused); every secret opens and
 * the backup restores byte for byte with k2 alone. Until then, the keyring check refuses a retirement.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { assertKeyringCoversUsage, KeyringIncomplete, keysInUse, keyUsage, reencryptAll } from '../../activities/keys/rotation.ts';
import { ensureCustomerKey, ensureGatewayToken, secretPurposes } from '../../activities/cloud/keys.ts';
import { getEncryptedSecret, putEncryptedSecret } from '../../db/repositories/encrypted-secrets.ts';
import { decryptSecret, encryptSecret, masterKeysFrom } from '../../lib/secrets.ts';
import { createLogger } from '../../lib/log.ts';
import { createMailOutbox } from '../../api/mail-outbox.ts';
import { startBackupWorld, type BackupWorld } from '../support/backup-fixtures.ts';

const k1 = { id: 'k1', base64: randomBytes(32).toString('base64') };
const k2 = { id: 'k2', base64: randomBytes(32).toString('base64') };
const before = masterKeysFrom(k1);
const during = masterKeysFrom(k2, [k1]);
const after = masterKeysFrom(k2);
const log = createLogger('key-rotation', 'silent');

let world: BackupWorld;
beforeAll(async () => {
  world = await startBackupWorld('key-rotation');
});
afterAll(async () => {
  await world?.stop();
});

test('rotate, re-encrypt, retire the old key: every secret and backup still opens', async () => {
  const db = world.database.db;
  const userId = world.userId;
  // Sealed under k1: the customer's keys, a model API key, a mail waiting to be sent, and a backup.
  const sshKey = await ensureCustomerKey(db, before, userId);
  const token = await ensureGatewayToken(db, before, userId);
  const apiContext = `${userId}/${secretPurposes.modelApiKey}`;
  await putEncryptedSecret(db, { owner: userId, purpose: secretPurposes.modelApiKey, ...encryptSecret(before, 'sk-ant-rotation-test-key-0123456789', apiContext) });
  const sent: unknown[] = [];
  const queued = encryptSecret(before, JSON.stringify({ kind: 'welcome', to: 'a@example.com', userId, period: 'p', data: { name: 'A' } }), 'mail-outbox');
  await db.insertInto('mailOutbox').values({ payload: queued.ciphertext, keyId: queued.keyId }).execute();
  const src = path.join(world.dir, 'src');
  await mkdir(src, { recursive: true });
  await writeFile(path.join(src, 'notes.txt'), 'remember the milk');
  const backup = await world.service({ masterKeys: before.keys, currentKeyId: 'k1' }).backup({ userId, ssh: world.sshd.target });
  expect(keysInUse(await keyUsage(db))).toEqual(['k1']);

  // k2 becomes current; k1 may not go yet.
  await expect(assertKeyringCoversUsage(db, after)).rejects.toBeInstanceOf(KeyringIncomplete);
  await assertKeyringCoversUsage(db, during);
  const moved = await reencryptAll({ db, masterKeys: during, s3: world.s3, bucket: world.bucket, log });
  expect(moved).toEqual({ secrets: 3, mails: 1, backups: 1 });
  expect(await reencryptAll({ db, masterKeys: during, s3: world.s3, bucket: world.bucket, log })).toEqual({ secrets: 0, mails: 0, backups: 0 });
  expect(keysInUse(await keyUsage(db))).toEqual(['k2']);

  // k1 retires: everything opens with k2 alone.
  await assertKeyringCoversUsage(db, after);
  expect(await ensureCustomerKey(db, after, userId)).toEqual(sshKey);
  expect(await ensureGatewayToken(db, after, userId)).toBe(token);
  const apiKey = (await getEncryptedSecret(db, userId, secretPurposes.modelApiKey))!;
  expect(decryptSecret(after, apiKey, apiContext).toString()).toBe('sk-ant-rotation-test-key-0123456789');
  const outboxAfter = createMailOutbox({ db, masterKeys: after, sendMail: async (m) => { sent.push(m); }, log, pollMs: 3_600_000 });
  expect(await outboxAfter.drain()).toBe(1);
  await outboxAfter.stop();
  expect(sent).toEqual([expect.objectContaining({ kind: 'welcome', to: 'a@example.com' })]);
  await rm(src, { recursive: true, force: true });
  const restored = await world.service({ masterKeys: after.keys, currentKeyId: 'k2' }).restore({ backupId: backup.backupId, ssh: world.sshd.target });
  expect(restored.fileCount).toBe(1);
  expect(await readFile(path.join(src, 'notes.txt'), 'utf8')).toBe('remember the milk');
  // Without k1 and before re-encryption, the same backup would not have opened.
  const record = (await db.selectFrom('backups').selectAll().where('id', '=', backup.backupId).executeTakeFirstOrThrow());
  expect(record.encryptionKeyId).toBe('k2');
  expect(record.dataKey).toMatch(/"keyId":"k2"/);
});

test('a re-wrapped data key opens only the backup it was made for', async () => {
  const db = world.database.db;
  const rows = await db.selectFrom('backups').selectAll().where('userId', '=', world.userId).execute();
  const [row] = rows;
  const { unwrapRewrapped } = await import('../../activities/backups/crypto.ts');
  expect(() => unwrapRewrapped(row!.dataKey!, after.keys, crypto.randomUUID())).toThrow(/does not open/);
  expect(() => unwrapRewrapped(row!.dataKey!, before.keys, row!.id)).toThrow(/not configured/);
});

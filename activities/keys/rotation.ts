/**
 * Master key rotation (invariant 6, docs/invariants.md). The keyring is MASTER_KEY/MASTER_KEY_ID (the current key,
 * which every new write uses) plus MASTER_KEYS_PREVIOUS (older keys that still decrypt). After a new
 * key is made current, `reencrypt` moves everything sealed under an older one to it: encrypted
 * secrets (decrypted and sealed again), queued mails, and backups (their data key re-wrapped into the
 * record; the object in storage is not rewritten). An older key may leave the keyring only when
 * `keyUsage` shows nothing uses it; processes refuse to start when a key in use is missing
 * (`assertKeyringCoversUsage`), so a key cannot be retired by mistake.
 */
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { Readable } from 'node:stream';
import type { Db } from '../../db/database.ts';
import type { Logger } from '../../lib/log.ts';
import { decryptSecret, encryptSecret, type MasterKeys } from '../../lib/secrets.ts';
import { parseHeader, rewrapDataKey, unwrapDataKey, unwrapRewrapped } from '../backups/crypto.ts';

/** How many rows each master key still seals, by kind of row. */
export interface KeyUsage {
  secrets: Record<string, number>;
  mails: Record<string, number>;
  backups: Record<string, number>;
}

/** The outbox's sealing context (api/mail-outbox.ts). */
const outboxContext = 'mail-outbox';

/** Backups whose object may still be read: a failed or deleted one needs no key. */
const liveBackupStatuses = ['pending', 'completed'] as const;

export async function keyUsage(db: Db): Promise<KeyUsage> {
  const byKey = (rows: { keyId: string; n: string | number | bigint }[]) => Object.fromEntries(rows.map((r) => [r.keyId, Number(r.n)]));
  const secrets = await db.selectFrom('encryptedSecrets').select((eb) => ['keyId', eb.fn.countAll<string>().as('n')]).groupBy('keyId').execute();
  const mails = await db.selectFrom('mailOutbox').select((eb) => ['keyId', eb.fn.countAll<string>().as('n')]).groupBy('keyId').execute();
  const backups = await db.selectFrom('backups').select((eb) => ['encryptionKeyId as keyId', eb.fn.countAll<string>().as('n')])
    .where('status', 'in', liveBackupStatuses).groupBy('encryptionKeyId').execute();
  return { secrets: byKey(secrets), mails: byKey(mails), backups: byKey(backups) };
}

/** The key ids anything still uses. */
export function keysInUse(usage: KeyUsage): string[] {
  return [...new Set([...Object.keys(usage.secrets), ...Object.keys(usage.mails), ...Object.keys(usage.backups)])].sort();
}

/** Thrown at start when a key that seals stored data is not in the keyring. */
export class KeyringIncomplete extends Error {
  override name = 'KeyringIncomplete';
}

/** Refuses (KeyringIncomplete) when data sealed under a key id the keyring lacks exists. */
export async function assertKeyringCoversUsage(db: Db, masterKeys: MasterKeys): Promise<void> {
  const missing = keysInUse(await keyUsage(db)).filter((id) => !masterKeys.keys[id]);
  if (missing.length > 0) {
    throw new KeyringIncomplete(`stored data is sealed under master key${missing.length > 1 ? 's' : ''} ${missing.map((m) => JSON.stringify(m)).join(', ')}, `
      + 'which the keyring lacks: put it back in MASTER_KEYS_PREVIOUS (a key retires only when `node scripts/master-keys.ts status` shows it unused)');
  }
}

export interface ReencryptResult {
  secrets: number;
  mails: number;
  backups: number;
}

/**
 * Moves every secret, queued mail and backup key sealed under an older key to the current one.
 * Idempotent and safe to run again or beside the app: each row is rewritten only if it still has the
 * key id it was read with.
 */
export async function reencryptAll(deps: { db: Db; masterKeys: MasterKeys; s3?: S3Client; bucket?: string; log: Logger }): Promise<ReencryptResult> {
  const { db, masterKeys, log } = deps;
  const current = masterKeys.currentKeyId;
  const result: ReencryptResult = { secrets: 0, mails: 0, backups: 0 };

  for (const row of await db.selectFrom('encryptedSecrets').selectAll().where('keyId', '<>', current).execute()) {
    const context = `${row.owner}/${row.purpose}`;
    const sealed = encryptSecret(masterKeys, decryptSecret(masterKeys, row, context), context);
    const done = await db.updateTable('encryptedSecrets').set({ ciphertext: sealed.ciphertext, keyId: sealed.keyId })
      .where('id', '=', row.id).where('keyId', '=', row.keyId).executeTakeFirst();
    result.secrets += Number(done.numUpdatedRows);
  }

  for (const row of await db.selectFrom('mailOutbox').selectAll().where('keyId', '<>', current).execute()) {
    const sealed = encryptSecret(masterKeys, decryptSecret(masterKeys, { ciphertext: row.payload, keyId: row.keyId }, outboxContext), outboxContext);
    const done = await db.updateTable('mailOutbox').set({ payload: sealed.ciphertext, keyId: sealed.keyId })
      .where('id', '=', row.id).where('keyId', '=', row.keyId).executeTakeFirst();
    result.mails += Number(done.numUpdatedRows);
  }

  const backups = await db.selectFrom('backups').selectAll().where('encryptionKeyId', '<>', current).where('status', 'in', liveBackupStatuses).execute();
  if (backups.length > 0 && (!deps.s3 || !deps.bucket)) throw new Error('backups need re-wrapping: the job needs object storage (run it with the worker\'s configuration)');
  for (const row of backups) {
    let dataKey: Buffer;
    if (row.dataKey) {
      dataKey = unwrapRewrapped(row.dataKey, masterKeys.keys, row.id).dataKey;
    } else {
      const header = await readHeader(deps.s3!, deps.bucket!, row.objectKey);
      if (!header) {
        log.warn({ backupId: row.id, objectKey: row.objectKey }, 'backup object missing or unreadable; its key is left as it is');
        continue;
      }
      dataKey = unwrapDataKey(header, masterKeys.keys);
    }
    try {
      const done = await db.updateTable('backups').set({ dataKey: rewrapDataKey(dataKey, current, masterKeys.keys, row.id), encryptionKeyId: current })
        .where('id', '=', row.id).where('encryptionKeyId', '=', row.encryptionKeyId).executeTakeFirst();
      result.backups += Number(done.numUpdatedRows);
    } finally {
      dataKey.fill(0);
    }
  }
  log.info({ currentKeyId: current, ...result }, 'master key re-encryption done');
  return result;
}

/** The parsed header at the start of a backup object, or null when the object is gone. */
async function readHeader(s3: S3Client, bucket: string, key: string) {
  try {
    const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: 'bytes=0-16383' }));
    const chunks: Buffer[] = [];
    for await (const c of res.Body as Readable) chunks.push(c as Buffer);
    return parseHeader(Buffer.concat(chunks))?.json ?? null;
  } catch (err) {
    if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return null;
    throw err;
  }
}

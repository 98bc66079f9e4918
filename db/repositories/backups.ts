import type { Backup, BackupKind, BackupManifest, Db } from '../database.ts';

/** Records a backup about to be written. Idempotent on the object key (derived from workflow + step). */
export async function startBackup(
  db: Db,
  input: { userId: string; serverId: string | null; kind: BackupKind; parentId: string | null; objectKey: string; encryptionKeyId: string; expiresAt?: Date | null },
): Promise<Backup> {
  const inserted = await db
    .insertInto('backups')
    .values({ ...input, status: 'pending' })
    .onConflict((oc) => oc.column('objectKey').doNothing())
    .returningAll()
    .executeTakeFirst();
  return inserted ?? (await db.selectFrom('backups').selectAll().where('objectKey', '=', input.objectKey).executeTakeFirstOrThrow());
}

/** The object is written: records its size, SHA-256 and manifest. */
export async function completeBackup(
  db: Db,
  id: string,
  result: { sizeBytes: number; sha256: string; manifest?: BackupManifest | null },
): Promise<Backup> {
  return db
    .updateTable('backups')
    .set({ status: 'completed', sizeBytes: result.sizeBytes, sha256: result.sha256, manifest: result.manifest ? JSON.stringify(result.manifest) : null })
    .where('id', '=', id)
    .where('status', 'in', ['pending', 'completed'])
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** Size and SHA-256 were re-read from object storage and matched: the backup may stand in for the server. */
export async function markBackupVerified(db: Db, id: string, at: Date = new Date()): Promise<void> {
  await db.updateTable('backups').set({ verifiedAt: at }).where('id', '=', id).where('status', '=', 'completed').execute();
}

export async function markBackupFailed(db: Db, id: string): Promise<void> {
  await db.updateTable('backups').set({ status: 'failed' }).where('id', '=', id).where('status', '=', 'pending').execute();
}

/** The object was removed from storage (retention over). */
export async function markBackupDeleted(db: Db, id: string): Promise<void> {
  await db.updateTable('backups').set({ status: 'deleted' }).where('id', '=', id).execute();
}

export async function findBackup(db: Db, id: string): Promise<Backup | undefined> {
  return db.selectFrom('backups').selectAll().where('id', '=', id).executeTakeFirst();
}

/** A user's backups, newest first (the backups page). */
export async function listBackupsOfUser(db: Db, userId: string, limit = 50): Promise<Backup[]> {
  return db.selectFrom('backups').selectAll().where('userId', '=', userId).orderBy('createdAt', 'desc').limit(limit).execute();
}

/** The newest completed and verified backup: what a restore uses, and what allows a deletion. */
export async function latestVerifiedBackup(db: Db, userId: string): Promise<Backup | undefined> {
  return db
    .selectFrom('backups')
    .selectAll()
    .where('userId', '=', userId)
    .where('status', '=', 'completed')
    .where('verifiedAt', 'is not', null)
    .orderBy('createdAt', 'desc')
    .limit(1)
    .executeTakeFirst();
}

/** Completed backups whose retention ended before `now`, for the pruning schedule. */
export async function listExpiredBackups(db: Db, now: Date = new Date(), limit = 100): Promise<Backup[]> {
  return db
    .selectFrom('backups')
    .selectAll()
    .where('status', '=', 'completed')
    .where('expiresAt', '<=', now)
    .orderBy('expiresAt')
    .limit(limit)
    .execute();
}

/**
 * Where backup records live. The service takes this small interface so the worker wires the
 * PostgreSQL `backups` and `backup_attempts` tables (createKyselyBackupStore) and the benchmark an
 * in-memory one.
 *
 * Attempts: the same backup may be attempted more than once at the same time (Temporal retries an
 * attempt that timed out while it still runs). Each attempt writes its own object and claims the
 * backup's row before it writes anything; only the attempt that holds the row may complete or fail
 * it, and each attempt removes only what it wrote.
 */
import type { Backup, BackupAttemptOutcome, BackupKind, BackupManifest, Db } from '../../db/database.ts';

export type BackupRecord = Pick<Backup, 'id' | 'userId' | 'serverId' | 'kind' | 'parentId' | 'sizeBytes' | 'sha256' | 'objectKey'
  | 'encryptionKeyId' | 'dataKey' | 'status' | 'manifest' | 'createdAt' | 'verifiedAt' | 'expiresAt' | 'attemptId'>;

export interface NewBackupRecord {
  id: string;
  userId: string;
  serverId: string | null;
  kind: BackupKind;
  parentId: string | null;
  /** The claiming attempt's own object key. */
  objectKey: string;
  encryptionKeyId: string;
  expiresAt: Date | null;
  /** The claiming attempt. */
  attemptId: string;
}

/** An attempt that never finished: what it may have left in storage. */
export interface UnfinishedAttempt {
  attemptId: string;
  backupId: string;
  userId: string;
  objectKey: string;
  startedAt: Date;
}

export interface BackupStore {
  /**
   * Records the attempt and makes it the owner of the backup's row (inserted pending, or a row that
   * is not completed reset to pending with this attempt's key). If the backup already completed, the
   * attempt is not recorded and the completed row comes back instead.
   */
  claim(record: NewBackupRecord): Promise<{ owned: true } | { owned: false; completed: BackupRecord }>;
  get(id: string): Promise<BackupRecord | undefined>;
  /**
   * Completes the row with what verification found, only if `attemptId` still owns it and it is
   * pending; finishes the attempt as 'completed' in the same transaction. False if not the owner.
   */
  markCompleted(id: string, attemptId: string, done: { sizeBytes: number; sha256: string; manifest: BackupManifest; verifiedAt: Date }): Promise<boolean>;
  /** Marks the row failed, only if `attemptId` owns it and it is pending. */
  markFailed(id: string, attemptId: string): Promise<void>;
  /** Records that an attempt is over and left nothing behind (or that the sweep removed it). */
  finishAttempt(attemptId: string, outcome: Exclude<BackupAttemptOutcome, 'completed'>): Promise<void>;
  /** Attempts started before `startedBefore` that never finished. */
  unfinishedAttempts(startedBefore: Date): Promise<UnfinishedAttempt[]>;
  /** Marks a row deleted, only if it still has the status (and owner) the caller saw. */
  markDeleted(id: string, seen: Pick<BackupRecord, 'status' | 'attemptId'>): Promise<void>;
  /** A user's records that are not deleted, newest first. */
  listForUser(userId: string): Promise<BackupRecord[]>;
  /** Users with completed backups expired at `now`, or failed ones left to clean up. */
  usersToPrune(now: Date): Promise<string[]>;
}

/** The store on the PostgreSQL `backups` and `backup_attempts` tables (db/tables/). */
export function createKyselyBackupStore(db: Db): BackupStore {
  return {
    async claim(r) {
      return db.transaction().execute(async (trx) => {
        const { attemptId, ...row } = r;
        const claimed = await trx.insertInto('backups')
          .values({ ...row, attemptId, status: 'pending' })
          .onConflict((oc) => oc.column('id').doUpdateSet({
            status: 'pending', kind: r.kind, parentId: r.parentId, expiresAt: r.expiresAt, objectKey: r.objectKey,
            encryptionKeyId: r.encryptionKeyId, dataKey: null, attemptId, sizeBytes: null, sha256: null, manifest: null, verifiedAt: null,
          }).where('backups.status', '<>', 'completed'))
          .returning('id')
          .executeTakeFirst();
        if (!claimed) {
          const completed = await trx.selectFrom('backups').selectAll().where('id', '=', r.id).executeTakeFirstOrThrow();
          return { owned: false as const, completed };
        }
        await trx.insertInto('backupAttempts').values({ id: attemptId, backupId: r.id, objectKey: r.objectKey }).execute();
        return { owned: true as const };
      });
    },
    async get(id) {
      return db.selectFrom('backups').selectAll().where('id', '=', id).executeTakeFirst();
    },
    async markCompleted(id, attemptId, done) {
      return db.transaction().execute(async (trx) => {
        const result = await trx.updateTable('backups')
          .set({ status: 'completed', sizeBytes: done.sizeBytes, sha256: done.sha256, manifest: JSON.stringify(done.manifest), verifiedAt: done.verifiedAt })
          .where('id', '=', id).where('status', '=', 'pending').where('attemptId', '=', attemptId)
          .executeTakeFirst();
        if (result.numUpdatedRows !== 1n) return false;
        await trx.updateTable('backupAttempts').set({ finishedAt: new Date(), outcome: 'completed' }).where('id', '=', attemptId).execute();
        return true;
      });
    },
    async markFailed(id, attemptId) {
      await db.updateTable('backups').set({ status: 'failed' })
        .where('id', '=', id).where('status', '=', 'pending').where('attemptId', '=', attemptId).execute();
    },
    async finishAttempt(attemptId, outcome) {
      await db.updateTable('backupAttempts').set({ finishedAt: new Date(), outcome }).where('id', '=', attemptId).where('finishedAt', 'is', null).execute();
    },
    async unfinishedAttempts(startedBefore) {
      return db.selectFrom('backupAttempts').innerJoin('backups', 'backups.id', 'backupAttempts.backupId')
        .select(['backupAttempts.id as attemptId', 'backupAttempts.backupId', 'backups.userId', 'backupAttempts.objectKey', 'backupAttempts.startedAt'])
        .where('backupAttempts.finishedAt', 'is', null).where('backupAttempts.startedAt', '<', startedBefore)
        .orderBy('backupAttempts.startedAt').execute();
    },
    async markDeleted(id, seen) {
      await db.updateTable('backups').set({ status: 'deleted' }).where('id', '=', id).where('status', '=', seen.status)
        .where((eb) => (seen.attemptId === null ? eb('attemptId', 'is', null) : eb('attemptId', '=', seen.attemptId))).execute();
    },
    async listForUser(userId) {
      return db.selectFrom('backups').selectAll().where('userId', '=', userId).where('status', '<>', 'deleted')
        .orderBy('createdAt', 'desc').orderBy('id').execute();
    },
    async usersToPrune(now) {
      const rows = await db.selectFrom('backups').select('userId').distinct()
        .where((eb) => eb.or([
          eb.and([eb('status', '=', 'completed'), eb('expiresAt', '<=', now)]),
          eb('status', '=', 'failed'),
        ]))
        .execute();
      return rows.map((r) => r.userId);
    },
  };
}

interface MemoryAttempt { id: string; backupId: string; objectKey: string; startedAt: Date; finishedAt: Date | null; outcome: BackupAttemptOutcome | null }

/** An in-memory store for benchmarks and unit tests. */
export function createMemoryBackupStore(): BackupStore & { rows: Map<string, BackupRecord>; attempts: Map<string, MemoryAttempt> } {
  const rows = new Map<string, BackupRecord>();
  const attempts = new Map<string, MemoryAttempt>();
  let tick = 0;
  return {
    rows,
    attempts,
    async claim(r) {
      const existing = rows.get(r.id);
      if (existing?.status === 'completed') return { owned: false, completed: existing };
      rows.set(r.id, { ...r, dataKey: null, status: 'pending', sizeBytes: null, sha256: null, manifest: null, verifiedAt: null,
        createdAt: existing?.createdAt ?? new Date(Date.now() + tick++) });
      attempts.set(r.attemptId, { id: r.attemptId, backupId: r.id, objectKey: r.objectKey, startedAt: new Date(), finishedAt: null, outcome: null });
      return { owned: true };
    },
    async get(id) {
      return rows.get(id);
    },
    async markCompleted(id, attemptId, done) {
      const row = rows.get(id);
      if (row?.status !== 'pending' || row.attemptId !== attemptId) return false;
      rows.set(id, { ...row, status: 'completed', ...done });
      attempts.set(attemptId, { ...attempts.get(attemptId)!, finishedAt: new Date(), outcome: 'completed' });
      return true;
    },
    async markFailed(id, attemptId) {
      const row = rows.get(id);
      if (row?.status === 'pending' && row.attemptId === attemptId) rows.set(id, { ...row, status: 'failed' });
    },
    async finishAttempt(attemptId, outcome) {
      const a = attempts.get(attemptId);
      if (a && !a.finishedAt) attempts.set(attemptId, { ...a, finishedAt: new Date(), outcome });
    },
    async unfinishedAttempts(startedBefore) {
      return [...attempts.values()].filter((a) => !a.finishedAt && a.startedAt < startedBefore)
        .map((a) => ({ attemptId: a.id, backupId: a.backupId, userId: rows.get(a.backupId)!.userId, objectKey: a.objectKey, startedAt: a.startedAt }));
    },
    async markDeleted(id, seen) {
      const row = rows.get(id);
      if (row && row.status === seen.status && row.attemptId === seen.attemptId) rows.set(id, { ...row, status: 'deleted' });
    },
    async listForUser(userId) {
      return [...rows.values()].filter((r) => r.userId === userId && r.status !== 'deleted')
        .sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime());
    },
    async usersToPrune(now) {
      return [...new Set([...rows.values()]
        .filter((r) => (r.status === 'completed' && r.expiresAt !== null && r.expiresAt <= now) || r.status === 'failed')
        .map((r) => r.userId))];
    },
  };
}

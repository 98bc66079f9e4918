/**
 * Where backup records live. The service takes this small interface so the worker wires the
 * PostgreSQL `backups` table (createKyselyBackupStore) and the benchmark an in-memory one.
 */
import type { Backup, BackupKind, BackupManifest, BackupStatus, Db } from '../../db/database.ts';

export type BackupRecord = Pick<Backup, 'id' | 'userId' | 'serverId' | 'kind' | 'parentId' | 'sizeBytes' | 'sha256' | 'objectKey'
  | 'encryptionKeyId' | 'dataKey' | 'status' | 'manifest' | 'createdAt' | 'verifiedAt' | 'expiresAt'>;

export interface NewBackupRecord {
  id: string;
  userId: string;
  serverId: string | null;
  kind: BackupKind;
  parentId: string | null;
  objectKey: string;
  encryptionKeyId: string;
  expiresAt: Date | null;
}

export interface BackupStore {
  /** Inserts a pending record, or resets a not-completed one with this id to pending (a retry). */
  upsertPending(record: NewBackupRecord): Promise<void>;
  get(id: string): Promise<BackupRecord | undefined>;
  /** Sets status completed with what verification found, only if the record is still pending. */
  markCompleted(id: string, done: { sizeBytes: number; sha256: string; manifest: BackupManifest; verifiedAt: Date }): Promise<void>;
  setStatus(id: string, status: BackupStatus): Promise<void>;
  /** A user's records that are not deleted, newest first. */
  listForUser(userId: string): Promise<BackupRecord[]>;
  /** Users with completed backups expired at `now`, or failed ones left to clean up. */
  usersToPrune(now: Date): Promise<string[]>;
}

/** The store on the PostgreSQL `backups` table (db/tables/backups.ts). */
export function createKyselyBackupStore(db: Db): BackupStore {
  return {
    async upsertPending(r) {
      await db.insertInto('backups')
        .values({ ...r, status: 'pending' })
        .onConflict((oc) => oc.column('id').doUpdateSet({ status: 'pending', kind: r.kind, parentId: r.parentId, expiresAt: r.expiresAt })
          .where('backups.status', '<>', 'completed'))
        .execute();
    },
    async get(id) {
      return db.selectFrom('backups').selectAll().where('id', '=', id).executeTakeFirst();
    },
    async markCompleted(id, done) {
      const result = await db.updateTable('backups')
        .set({ status: 'completed', sizeBytes: done.sizeBytes, sha256: done.sha256, manifest: JSON.stringify(done.manifest), verifiedAt: done.verifiedAt })
        .where('id', '=', id).where('status', '=', 'pending')
        .executeTakeFirst();
      if (result.numUpdatedRows !== 1n) throw new Error(`backup ${id} was not pending when it completed`);
    },
    async setStatus(id, status) {
      await db.updateTable('backups').set({ status }).where('id', '=', id).execute();
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

/** An in-memory store for benchmarks and unit tests. */
export function createMemoryBackupStore(): BackupStore & { rows: Map<string, BackupRecord> } {
  const rows = new Map<string, BackupRecord>();
  let tick = 0;
  return {
    rows,
    async upsertPending(r) {
      const existing = rows.get(r.id);
      if (existing?.status === 'completed') return;
      rows.set(r.id, { ...r, dataKey: null, status: 'pending', sizeBytes: null, sha256: null, manifest: null, verifiedAt: null,
        createdAt: existing?.createdAt ?? new Date(Date.now() + tick++) });
    },
    async get(id) {
      return rows.get(id);
    },
    async markCompleted(id, done) {
      const row = rows.get(id);
      if (row?.status !== 'pending') throw new Error(`backup ${id} was not pending when it completed`);
      rows.set(id, { ...row, status: 'completed', ...done });
    },
    async setStatus(id, status) {
      const row = rows.get(id);
      if (row) rows.set(id, { ...row, status });
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

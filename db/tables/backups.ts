import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely';

export const backupKinds = ['full', 'incremental'] as const;
export type BackupKind = (typeof backupKinds)[number];

export const backupStatuses = ['pending', 'completed', 'failed', 'deleted'] as const;
export type BackupStatus = (typeof backupStatuses)[number];

/** What a backup holds, written once it completed (paths, sizes, OpenClaw version...). */
export type BackupManifest = Record<string, unknown>;

/**
 * One backup object in object storage. `verifiedAt` is set only after size and SHA-256 were re-read
 * from storage and matched: a server may be deleted only when such a backup exists.
 */
export interface BackupsTable {
  id: Generated<string>;
  userId: string;
  /** The server it was taken from (null once that server row is gone, or for imported backups). */
  serverId: string | null;
  kind: BackupKind;
  /** The backup an incremental one builds on; null for full backups. */
  parentId: string | null;
  sizeBytes: number | null;
  sha256: string | null;
  objectKey: string;
  encryptionKeyId: string;
  /** The data key re-wrapped under encryptionKeyId after a master key rotation; null: the object's header holds it. */
  dataKey: ColumnType<string | null, string | null | undefined, string | null>;
  status: ColumnType<BackupStatus, BackupStatus | undefined, BackupStatus>;
  manifest: ColumnType<BackupManifest | null, string | null | undefined, string | null>;
  createdAt: ColumnType<Date, Date | undefined, never>;
  verifiedAt: Date | null;
  expiresAt: Date | null;
  /** The attempt (backup_attempts) whose object this row names; only it completes or fails the row. */
  attemptId: ColumnType<string | null, string | null | undefined, string | null>;
}

export type Backup = Selectable<BackupsTable>;
export type NewBackup = Insertable<BackupsTable>;
export type BackupUpdate = Updateable<BackupsTable>;

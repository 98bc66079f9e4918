/** Backups: streaming SSH → zstd → chunked AES-256-GCM → S3, verified restore, incrementals, retention. */
export { createBackupService } from './service.ts';
export type {
  AnyBackupManifest, BackupManifestV1, BackupManifestV2, BackupProgress, BackupRequest, BackupResult, BackupService, BackupServiceConfig, PruneRequest,
  RestoreRequest, RestoreResult, SkippedEntry,
} from './service.ts';
export { createKyselyBackupStore, createMemoryBackupStore } from './store.ts';
export type { BackupRecord, BackupStore, NewBackupRecord, UnfinishedAttempt } from './store.ts';
export { connectSsh, hostKeyBlob } from './ssh.ts';
export type { SshConnect, SshTarget } from './ssh.ts';
export type { MasterKeys } from './crypto.ts';
export type { TreeEntry, TreeSummary } from './tree.ts';
export type { ManifestEntry } from './archive.ts';

/** Backups: streaming SSH → zstd → chunked AES-256-GCM → S3, verified restore, incrementals, retention. */
export { createBackupService } from './service.ts';
export type {
  BackupManifestV1, BackupProgress, BackupRequest, BackupResult, BackupService, BackupServiceConfig, PruneRequest, RestoreRequest, RestoreResult,
} from './service.ts';
export { createKyselyBackupStore, createMemoryBackupStore } from './store.ts';
export type { BackupRecord, BackupStore, NewBackupRecord } from './store.ts';
export { connectSsh, hostKeyBlob } from './ssh.ts';
export type { SshConnect, SshTarget } from './ssh.ts';
export type { MasterKeys } from './crypto.ts';
export type { TreeEntry, TreeSummary } from './tree.ts';

import type { ColumnType, Selectable } from 'kysely';

export const backupAttemptOutcomes = ['completed', 'failed', 'superseded', 'swept'] as const;
export type BackupAttemptOutcome = (typeof backupAttemptOutcomes)[number];

/**
 * One attempt at a backup, recorded before it creates anything in object storage. Each attempt
 * writes its own object; `finishedAt` is set once the attempt completed the backup or removed what it
 * wrote. An attempt left unfinished for longer than any attempt can live is swept (its object and
 * upload removed) by the pruning schedule.
 */
export interface BackupAttemptsTable {
  id: string;
  backupId: string;
  objectKey: string;
  startedAt: ColumnType<Date, Date | undefined, never>;
  finishedAt: Date | null;
  /** completed: its object is the backup's; failed: it removed what it wrote; superseded: another attempt owns the backup; swept: removed by the sweep. */
  outcome: BackupAttemptOutcome | null;
}

export type BackupAttempt = Selectable<BackupAttemptsTable>;

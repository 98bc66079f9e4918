/**
 * A small workflow for the backup activity tests: a backup, then optionally its restore, through the
 * real activities on a real worker, with the activity timeouts and retries the test chooses (short
 * ones, so a missing heartbeat or a stuck attempt shows in seconds).
 */
import type { Duration } from '@temporalio/common';
import { proxyActivities } from '@temporalio/workflow';
import type { BackupActivities, BackupRecord } from '../../activities/contracts.ts';
import { nonRetryableErrorTypes } from '../../lib/errors.ts';

export interface BackupStepsInput {
  customerId: string;
  serverId: string;
  idempotencyKey: string;
  restore: boolean;
  startToCloseTimeout: Duration;
  heartbeatTimeout: Duration;
  maximumAttempts: number;
}

/** Backs up (and restores, if asked) the customer's server; returns the backup. */
export async function backupSteps(input: BackupStepsInput): Promise<BackupRecord> {
  const backups = proxyActivities<BackupActivities>({
    startToCloseTimeout: input.startToCloseTimeout,
    heartbeatTimeout: input.heartbeatTimeout,
    retry: { initialInterval: '500ms', backoffCoefficient: 1, maximumAttempts: input.maximumAttempts, nonRetryableErrorTypes: [...nonRetryableErrorTypes] },
  });
  const backup = await backups.createBackup({ customerId: input.customerId, serverId: input.serverId, reason: 'manual', idempotencyKey: input.idempotencyKey });
  if (input.restore) await backups.restoreBackup({ customerId: input.customerId, serverId: input.serverId, backupId: backup.backupId });
  return backup;
}

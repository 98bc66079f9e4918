import { proxyActivities } from '@temporalio/workflow';
import type { BackupActivities } from '../activities/contracts.ts';

const { pruneExpiredBackups: prune } = proxyActivities<BackupActivities>({
  startToCloseTimeout: '1h',
  heartbeatTimeout: '2m',
  retry: { initialInterval: '1m', backoffCoefficient: 2, maximumInterval: '30m', maximumAttempts: 5 },
});

/**
 * Deletes backups whose retention is over (per plan; the activity keeps what must be kept).
 * Run daily by the `prune` Schedule (worker/schedules.ts); safe to run twice.
 */
export async function pruneExpiredBackups(): Promise<{ deletedBackupIds: string[] }> {
  return prune.executeWithOptions({ summary: 'prune expired backups' }, [{ now: new Date(Date.now()).toISOString() }]);
}

import { ScheduleAlreadyRunning, ScheduleOverlapPolicy, type Client } from '@temporalio/client';
import { pruneScheduleId } from '../workflows/prune-schedule.ts';

/**
 * The daily Schedule that prunes expired backups. Created at every worker start; an existing one is
 * left as it is (an operator may have paused or changed it in the Web UI).
 */
export async function ensurePruneSchedule(client: Client, taskQueue: string): Promise<'created' | 'exists'> {
  try {
    await client.schedule.create({
      scheduleId: pruneScheduleId,
      spec: { calendars: [{ hour: 3, minute: 17 }] },
      action: { type: 'startWorkflow', workflowType: 'pruneExpiredBackups', taskQueue, args: [], workflowId: `${pruneScheduleId}-run` },
      policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 day' },
      memo: { purpose: 'Deletes backups whose retention is over (per plan)' },
    });
    return 'created';
  } catch (err) {
    if (err instanceof ScheduleAlreadyRunning) return 'exists';
    throw err;
  }
}

import { ScheduleAlreadyRunning, ScheduleOverlapPolicy, type Client, type ScheduleOptions } from '@temporalio/client';

/**
 * Every Temporal Schedule Berth runs, in one place. Each is created at every worker start when it does not
 * exist; an existing one is left as it is (an operator may have paused or changed it in the Web UI).
 * Overlaps are skipped: one run of each at a time.
 */
const schedules = {
  /** Daily: deletes backups whose retention is over (per plan); workflows/prune-schedule.ts. */
  prune: {
    scheduleId: 'berth-prune-expired-backups',
    workflowType: 'pruneExpiredBackups',
    spec: { calendars: [{ hour: 3, minute: 17 }] },
    catchupWindow: '1 day',
    purpose: 'Deletes backups whose retention is over (per plan)',
  },
  /** Every 15 minutes: replays Stripe events the webhook endpoint missed; workflows/stripe-reconciliation.ts. */
  reconciliation: {
    scheduleId: 'stripe-reconciliation',
    workflowType: 'stripeReconciliation',
    spec: { intervals: [{ every: '15 minutes' }] },
    catchupWindow: '1 hour',
    purpose: 'Replays Stripe events our webhook endpoint missed',
  },
} as const satisfies Record<string, { scheduleId: string; workflowType: string; spec: ScheduleOptions['spec']; catchupWindow: string; purpose: string }>;

export type ScheduleName = keyof typeof schedules;

/** The Schedule ids, by name (for tests and operators' tooling). */
export const scheduleIds = Object.fromEntries(Object.entries(schedules).map(([name, s]) => [name, s.scheduleId])) as Record<ScheduleName, string>;

/** Creates each Schedule that does not exist yet; says, per name, whether it was created or already there. */
export async function ensureSchedules(client: Client, taskQueue: string): Promise<Record<ScheduleName, 'created' | 'exists'>> {
  const outcome = {} as Record<ScheduleName, 'created' | 'exists'>;
  for (const [name, s] of Object.entries(schedules) as [ScheduleName, (typeof schedules)[ScheduleName]][]) {
    try {
      await client.schedule.create({
        scheduleId: s.scheduleId,
        spec: s.spec,
        action: { type: 'startWorkflow', workflowType: s.workflowType, taskQueue, args: [], workflowId: `${s.scheduleId}-run` },
        policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: s.catchupWindow },
        memo: { purpose: s.purpose },
      });
      outcome[name] = 'created';
    } catch (err) {
      if (!(err instanceof ScheduleAlreadyRunning)) throw err;
      outcome[name] = 'exists';
    }
  }
  return outcome;
}

import { ScheduleAlreadyRunning, ScheduleOverlapPolicy, type Client } from '@temporalio/client';
import type Stripe from 'stripe';
import { handledStripeEventTypes } from './normalize.ts';
import { processStripeEvent, type ProcessOutcome, type ProcessStripeEventDeps } from './process-event.ts';
import { stripeEventsProcessed } from './store.ts';

export interface ReconcileResult {
  listed: number;
  replayed: number;
  outcomes: Partial<Record<ProcessOutcome, number>>;
}

/**
 * Lists the Stripe events of the last `lookbackHours` (Stripe keeps 30 days) and gives each one
 * our endpoint has not processed its effect, through the same code path as the webhook. An outage
 * of our endpoint therefore loses nothing; replaying a processed event is skipped up front.
 */
export async function reconcileStripeEvents(
  deps: ProcessStripeEventDeps & { stripe: Stripe },
  opts: { lookbackHours?: number; now?: Date } = {},
): Promise<ReconcileResult> {
  const now = opts.now ?? new Date();
  const since = Math.floor(now.getTime() / 1000) - (opts.lookbackHours ?? 72) * 3600;
  const listed: Stripe.Event[] = [];
  for await (const event of deps.stripe.events.list({ created: { gte: since }, types: [...handledStripeEventTypes], limit: 100 })) {
    listed.push(event);
  }
  const processed = await stripeEventsProcessed(deps.db, listed.map((e) => e.id));
  const result: ReconcileResult = { listed: listed.length, replayed: 0, outcomes: {} };
  // Oldest first, as Stripe would have sent them; the workflow orders by `created` anyway.
  for (const event of listed.filter((e) => processed.get(e.id) !== true).sort((a, b) => a.created - b.created)) {
    const outcome = await processStripeEvent(deps, event);
    result.replayed += 1;
    result.outcomes[outcome] = (result.outcomes[outcome] ?? 0) + 1;
  }
  if (result.replayed > 0) deps.log.info(result, 'stripe reconciliation replayed events');
  return result;
}

export const reconciliationScheduleId = 'stripe-reconciliation';

/**
 * Creates the Temporal Schedule that runs the reconciliation workflow every `everyMinutes`
 * (default 15), unless it exists. Overlaps are skipped: one reconciliation at a time.
 */
export async function ensureReconciliationSchedule(
  client: Client,
  opts: { taskQueue: string; workflowType: string; everyMinutes?: number; scheduleId?: string },
): Promise<void> {
  try {
    await client.schedule.create({
      scheduleId: opts.scheduleId ?? reconciliationScheduleId,
      spec: { intervals: [{ every: `${opts.everyMinutes ?? 15} minutes` }] },
      action: { type: 'startWorkflow', workflowType: opts.workflowType, taskQueue: opts.taskQueue, args: [], workflowId: `${opts.scheduleId ?? reconciliationScheduleId}-run` },
      policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 hour' },
      memo: { purpose: 'Replays Stripe events our webhook endpoint missed' },
    });
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
  }
}

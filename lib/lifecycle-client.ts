import type { Client } from '@temporalio/client';
import type { Plans } from '../activities/billing/plans.ts';
import { billingEventSignal, stateQuery, userActivitySignal, type LifecycleView } from '../workflows/messages.ts';
import type { CustomerLifecycleInput } from '../workflows/customer-lifecycle.ts';
import { lifecyclePlans, type LifecycleConfig } from '../workflows/deadlines.ts';
import { customerWorkflowId } from '../activities/billing/billing-event.ts';

/**
 * How every customer's lifecycle workflow is started, whichever event comes first. The plan policy
 * (lib/product.ts) goes into the workflow's input, so a running customer keeps the one it started
 * with and its history replays the same after the table changes.
 */
export function customerWorkflowStart(opts: { taskQueue: string; plans: Plans; overrides?: Partial<LifecycleConfig> }) {
  return {
    taskQueue: opts.taskQueue,
    workflowType: 'customerLifecycle',
    signal: billingEventSignal,
    workflowArgs: (userId: string): [CustomerLifecycleInput] => [
      { customerId: userId, config: { ...opts.overrides, plans: lifecyclePlans(opts.plans) } },
    ],
  };
}

/** Tells the customer's workflow they did something (starting it if needed): it wakes an idle server. */
export async function signalActivity(client: Client, start: ReturnType<typeof customerWorkflowStart>, userId: string, source: string): Promise<void> {
  await client.workflow.signalWithStart(start.workflowType, {
    workflowId: customerWorkflowId(userId),
    taskQueue: start.taskQueue,
    args: start.workflowArgs(userId),
    signal: userActivitySignal,
    signalArgs: [{ source }],
  });
}

/** The workflow's own view of the customer, or null when it has none (never started, or finished). */
export async function lifecycleView(client: Client, userId: string): Promise<LifecycleView | null> {
  try {
    return await client.workflow.getHandle(customerWorkflowId(userId)).query(stateQuery);
  } catch {
    return null;
  }
}

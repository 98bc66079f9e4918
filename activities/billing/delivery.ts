import type { Client, SignalDefinition } from '@temporalio/client';
import { toLifecycleEvent, type BillingEvent } from './billing-event.ts';
import { lifecycleWorkflowId, type BillingEvent as LifecycleBillingEvent } from '../../workflows/messages.ts';

/** Hands a normalized billing event to the customer's workflow. Must be safe to repeat. */
export interface BillingEventDelivery {
  deliver(userId: string, event: BillingEvent): Promise<void>;
}

export interface TemporalBillingDeliveryOptions {
  client: Client;
  taskQueue: string;
  /** The customer lifecycle workflow (its name or function). */
  workflowType: string;
  /** The workflow's billing-event signal (from workflows/messages.ts), or its name. */
  signal: SignalDefinition<[LifecycleBillingEvent]> | string;
  /** Arguments the workflow starts with when this event is the first thing it hears. */
  workflowArgs: (userId: string) => unknown[];
}

/**
 * Delivers by signalWithStart to `customer-<userId>`: starts the workflow if it is not running.
 * Repeating it is harmless because the workflow ignores an event id it has seen. The event goes in
 * the lifecycle's own shape (toLifecycleEvent).
 */
export function createTemporalBillingDelivery(opts: TemporalBillingDeliveryOptions): BillingEventDelivery {
  return {
    async deliver(userId, event) {
      await opts.client.workflow.signalWithStart(opts.workflowType, {
        workflowId: lifecycleWorkflowId(userId),
        taskQueue: opts.taskQueue,
        args: opts.workflowArgs(userId),
        signal: opts.signal,
        signalArgs: [toLifecycleEvent(event)],
      });
    },
  };
}

/**
 * A stand-in customer workflow for billing tests: it receives billing-event signals, counts every
 * delivery, drops duplicate event ids and folds each field by the newest `created` (what the real
 * lifecycle workflow does with these fields), and answers a query with what it holds.
 */
import { condition, defineQuery, defineSignal, setHandler } from '@temporalio/workflow';
import type { BillingEvent } from '../../workflows/messages.ts';

export interface RecorderState {
  /** Signals delivered, duplicates included. */
  deliveries: number;
  /** Distinct event ids applied, in arrival order. */
  eventIds: string[];
  accessEndsAt: string | null;
  plan: string | null;
  cancelAtPeriodEnd: boolean | null;
  /** Last known payment state: 'paid' | 'failed' | 'ended'. */
  payment: string | null;
  /** Last known subscription status. */
  status: string | null;
  /** Whether the newest checkout event brought money (false: a delayed method not paid yet). */
  checkoutPaid: boolean | null;
}

export const billingEventSignal = defineSignal<[BillingEvent]>('billingEvent');
export const recorderStateQuery = defineQuery<RecorderState>('recorderState');

export async function billingRecorder(_userId: string): Promise<void> {
  const state: RecorderState = { deliveries: 0, eventIds: [], accessEndsAt: null, plan: null, cancelAtPeriodEnd: null, payment: null, status: null, checkoutPaid: null };
  const newest: Record<string, string> = {};
  const take = <K extends keyof RecorderState>(field: K, value: RecorderState[K] | null | undefined, created: string) => {
    if (value === null || value === undefined) return;
    if (newest[field] !== undefined && newest[field] > created) return;
    newest[field] = created;
    state[field] = value;
  };
  setHandler(billingEventSignal, (event) => {
    state.deliveries += 1;
    if (state.eventIds.includes(event.eventId)) return;
    state.eventIds.push(event.eventId);
    take('accessEndsAt', event.accessEndsAt, event.created);
    take('plan', event.plan, event.created);
    take('cancelAtPeriodEnd', event.cancelAtPeriodEnd, event.created);
    const payment = { invoice_paid: 'paid', payment_failed: 'failed', subscription_deleted: 'ended' }[event.type as string];
    take('payment', payment ?? null, event.created);
    take('status', event.subscriptionStatus, event.created);
    take('checkoutPaid', event.type === 'checkout_completed' ? (event.paid ?? true) : null, event.created);
  });
  setHandler(recorderStateQuery, () => state);
  await condition(() => false);
}

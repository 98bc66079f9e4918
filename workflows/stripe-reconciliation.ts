import { proxyActivities } from '@temporalio/workflow';
import type { BillingReconciliationActivities } from '../activities/contracts.ts';

const { reconcileStripeEvents } = proxyActivities<BillingReconciliationActivities>({
  startToCloseTimeout: '10m',
  // It lists and replays a day of events; the worker heartbeats every activity, so a dead worker shows in 2 minutes, not 10.
  heartbeatTimeout: '2m',
  retry: { initialInterval: '30s', backoffCoefficient: 2, maximumInterval: '5m', maximumAttempts: 5 },
});

/**
 * Replays Stripe events our webhook endpoint never processed (an outage, a lost delivery), so
 * every event takes effect even if Stripe gave up retrying. Safe to run at any time.
 */
export async function stripeReconciliation(): Promise<{ listed: number; replayed: number }> {
  const { listed, replayed } = await reconcileStripeEvents.executeWithOptions({ summary: 'replay unprocessed Stripe events' }, []);
  return { listed, replayed };
}

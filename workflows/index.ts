/** Every workflow the Berth worker runs: point the worker's `workflowsPath` here. */
export { customerLifecycle } from './customer-lifecycle.ts';
export { pruneExpiredBackups } from './prune-schedule.ts';
export { stripeReconciliation } from './stripe-reconciliation.ts';

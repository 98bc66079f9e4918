/** The activities the lifecycle calls, with their timeouts and retries, and how their failures read. */
import { ActivityFailure, ApplicationFailure, proxyActivities } from '@temporalio/workflow';
import type { BackupActivities, BillingActivities, CloudActivities, MailActivities, ProjectionActivities } from '../../activities/contracts.ts';
import { ErrorType, nonRetryableErrorTypes } from '../../lib/errors.ts';

const retryCommon = { initialInterval: '5s', backoffCoefficient: 2, maximumInterval: '5m' } as const;
export const cloud = proxyActivities<CloudActivities>({
  startToCloseTimeout: '30m',
  heartbeatTimeout: '2m',
  // CapacityUnavailable is not retried here: the workflow falls back to the next candidate instead.
  retry: { ...retryCommon, maximumAttempts: 5, nonRetryableErrorTypes: [...nonRetryableErrorTypes, ErrorType.CapacityUnavailable] },
});
export const backups = proxyActivities<BackupActivities>({
  startToCloseTimeout: '4h',
  heartbeatTimeout: '2m',
  retry: { ...retryCommon, initialInterval: '30s', maximumAttempts: 3, nonRetryableErrorTypes: [...nonRetryableErrorTypes] },
});
export const mail = proxyActivities<MailActivities>({
  startToCloseTimeout: '1m',
  retry: { ...retryCommon, maximumAttempts: 10, nonRetryableErrorTypes: [...nonRetryableErrorTypes] },
});
export const billing = proxyActivities<BillingActivities>({
  startToCloseTimeout: '1m',
  retry: { ...retryCommon, maximumAttempts: 10 },
});
export const projection = proxyActivities<ProjectionActivities>({
  startToCloseTimeout: '1m',
  retry: { ...retryCommon, maximumAttempts: 10 },
});

/** The failure type (lib/errors.ts ErrorType) of an activity failure, if it has one. */
export function failureType(err: unknown): string | undefined {
  if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure) return err.cause.type ?? undefined;
  if (err instanceof ApplicationFailure) return err.type ?? undefined;
  return undefined;
}

/** A failure as one line: an activity's names the activity and its cause. */
export function failureMessage(err: unknown): string {
  if (err instanceof ActivityFailure && err.cause) return `${err.activityType}: ${err.cause.message}`;
  return err instanceof Error ? err.message : String(err);
}

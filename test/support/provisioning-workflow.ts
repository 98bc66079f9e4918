/**
 * A small provisioning workflow for the crash test: walks the candidates like the lifecycle does
 * (CapacityUnavailable → next candidate), then sets up the assistant. Activities retry quickly and
 * heartbeat often, so a killed worker's attempt is noticed in seconds.
 */
import { ApplicationFailure, proxyActivities } from '@temporalio/workflow';
import type { CloudActivities, ServerSummary } from '../../activities/contracts.ts';
import { ErrorType, nonRetryableErrorTypes } from '../../lib/errors.ts';

export interface ProvisionInput {
  customerId: string;
  candidates: { serverType: string; location: string }[];
}

const cloud = proxyActivities<CloudActivities>({
  startToCloseTimeout: '2m',
  heartbeatTimeout: '3s',
  retry: {
    initialInterval: '200ms', backoffCoefficient: 1.5, maximumInterval: '1s', maximumAttempts: 50,
    nonRetryableErrorTypes: [...nonRetryableErrorTypes, ErrorType.CapacityUnavailable],
  },
});

/** Ensures the customer's server and sets up its assistant; returns the server and assistant version. */
export async function provisionCustomer(input: ProvisionInput): Promise<ServerSummary & { assistantVersion: string }> {
  const { customerId } = input;
  let summary: ServerSummary | null = null;
  const tried: string[] = [];
  for (const candidate of input.candidates) {
    try {
      summary = await cloud.ensureServer({
        customerId, labels: { 'berth-customer': customerId }, name: `berth-${customerId}`, ...candidate,
      });
      break;
    } catch (err) {
      const type = err instanceof Error && err.cause instanceof ApplicationFailure ? err.cause.type : undefined;
      tried.push(`${candidate.serverType}/${candidate.location}`);
      if (type !== ErrorType.CapacityUnavailable) throw err;
    }
  }
  if (summary === null) throw ApplicationFailure.nonRetryable(`no candidate available (${tried.join(', ')})`, ErrorType.CapacityUnavailable);
  const { assistantVersion } = await cloud.setupAssistant({ customerId, serverId: summary.serverId, settings: {} });
  return { ...summary, assistantVersion };
}

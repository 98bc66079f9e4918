/**
 * A workflow for the native-addon test: one activity that opens and closes many SSH connections while
 * forcing garbage collection, as a busy worker does over hours of backups and restores.
 */
import { proxyActivities } from '@temporalio/workflow';

export interface SshChurnResult {
  connections: number;
  /** Every `.node` file the worker process had loaded at the end, and whether it is an ObjectWrap addon. */
  loadedAddons: { file: string; objectWrap: boolean }[];
}

export interface SshChurnActivities {
  churnSsh(input: { connections: number }): Promise<SshChurnResult>;
}

const { churnSsh } = proxyActivities<SshChurnActivities>({ startToCloseTimeout: '5m', retry: { maximumAttempts: 1 } });

/** Runs the SSH churn once and returns what the worker saw. */
export async function sshChurn(connections: number): Promise<SshChurnResult> {
  return churnSsh({ connections });
}

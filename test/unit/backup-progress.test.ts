/**
 * The backup activity forwards progress to the workflow (progress visible in the state query)
 * without flooding its history: the first report at once, then at most one per 10 s, never failing the backup.
 */
import { describe, expect, it } from 'vitest';
import { workflowProgressEveryMs, workflowProgressForwarder } from '../../activities/backups/activities.ts';
import type { BackupProgressReport } from '../../activities/contracts.ts';

const ids = { idempotencyKey: 'customer-u1:backup:manual:k', backupId: 'b1' };
const flush = () => new Promise((resolve) => setTimeout(resolve, 0));

describe('backup progress to the workflow', () => {
  it('reports at the start, then at most every 10 s', async () => {
    let now = 1_000_000;
    const sent: BackupProgressReport[] = [];
    const forward = workflowProgressForwarder(async (p) => { sent.push(p); }, ids, workflowProgressEveryMs, () => now);
    forward({ phase: 'preparing', bytesDone: 0, bytesEstimate: null, bytesStored: 0 });
    now += 1_000;
    forward({ phase: 'streaming', bytesDone: 10, bytesEstimate: 100, bytesStored: 5 });
    now += workflowProgressEveryMs - 1_001;
    forward({ phase: 'streaming', bytesDone: 20, bytesEstimate: 100, bytesStored: 9 });
    now += 1;
    forward({ phase: 'streaming', bytesDone: 30, bytesEstimate: 100, bytesStored: 14 });
    await flush();
    expect(workflowProgressEveryMs).toBe(10_000);
    expect(sent).toEqual([
      { ...ids, phase: 'preparing', bytesDone: 0, bytesEstimate: null, at: new Date(1_000_000).toISOString() },
      { ...ids, phase: 'streaming', bytesDone: 30, bytesEstimate: 100, at: new Date(1_010_000).toISOString() },
    ]);
  });

  it('a failing report (thrown or rejected) does not reach the backup', async () => {
    let now = 0;
    const calls: string[] = [];
    const forward = workflowProgressForwarder((p) => {
      calls.push(p.phase);
      if (p.phase === 'preparing') throw new Error('no connection');
      return Promise.reject(new Error('workflow not found'));
    }, ids, 10_000, () => now);
    expect(() => forward({ phase: 'preparing', bytesDone: 0, bytesEstimate: null, bytesStored: 0 })).not.toThrow();
    now += 10_000;
    expect(() => forward({ phase: 'streaming', bytesDone: 1, bytesEstimate: 2, bytesStored: 1 })).not.toThrow();
    await flush();
    expect(calls).toEqual(['preparing', 'streaming']);
  });
});

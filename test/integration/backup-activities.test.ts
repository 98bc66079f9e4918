/**
 * Proves, through a real Temporal worker (with the worker's heartbeat interceptor) running the real
 * backup activities over a real sshd (an unprivileged login) and MinIO:
 * - every long step heartbeats on a timer: a slow pre-backup step, a slow re-read from storage and a
 *   slow post-restore step each outlast the heartbeat timeout, and the backup and its restore still
 *   complete, each in its first attempt;
 * - an attempt that timed out stops: Temporal's answer to its next heartbeat cancels it, its command on
 *   the server is ended within seconds (not left to run beside the retry), and the retry completes
 *   the backup.
 */
import { randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import { CancelledFailure } from '@temporalio/common';
import { NativeConnection, Worker } from '@temporalio/worker';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createBackupActivities } from '../../activities/backups/activities.ts';
import type { BackupService } from '../../activities/backups/index.ts';
import { createPlans } from '../../activities/billing/plans.ts';
import type { BackupActivities } from '../../activities/contracts.ts';
import { activityContext, heartbeatInterceptor } from '../../activities/heartbeat.ts';
import { sh, startBackupWorld, testS3, type BackupWorld } from '../support/backup-fixtures.ts';
import type { BackupStepsInput } from '../support/backup-workflow.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const taskQueue = `backup-activities-${randomBytes(4).toString('hex')}`;

let world: BackupWorld;
let connection: Connection;
let client: Client;
let nativeConnection: NativeConnection;
let worker: Worker;
let workerRun: Promise<void>;
/** What the worker's activities run now: each test installs its own service. */
let current: BackupActivities;
/** Every createBackup attempt the worker ran: its number, and how it ended. */
const attempts: { attempt: number; error?: unknown; endedAt: number }[] = [];

function activitiesOn(service: BackupService): BackupActivities {
  return createBackupActivities({
    db: world.database.db, service, plans: createPlans(),
    sshTarget: async () => ({ ...world.sshd.target, privateKey: world.sshd.target.privateKey.toString(), hostKeyFingerprint: world.sshd.target.hostKey }),
  });
}

beforeAll(async () => {
  world = await startBackupWorld('backup_activities');
  await sh('mkdir -p "$1/d" && head -c 6M /dev/urandom > "$1/d/data.bin" && printf "note\\n" > "$1/note.txt" && chown -R "$2" "$1"',
    path.join(world.dir, 'src'), `${world.account.uid}:${world.account.gid}`);
  const address = process.env.TEMPORAL_ADDRESS!;
  connection = await Connection.connect({ address });
  client = new Client({ connection });
  nativeConnection = await NativeConnection.connect({ address });
  const recorded: BackupActivities = {
    createBackup: async (input) => {
      const attempt = activityContext()!.info.attempt;
      try {
        const result = await current.createBackup(input);
        attempts.push({ attempt, endedAt: Date.now() });
        return result;
      } catch (error) {
        attempts.push({ attempt, error, endedAt: Date.now() });
        throw error;
      }
    },
    restoreBackup: (input) => current.restoreBackup(input),
    latestVerifiedBackup: (input) => current.latestVerifiedBackup(input),
    pruneExpiredBackups: (input) => current.pruneExpiredBackups(input),
  };
  worker = await Worker.create({
    connection: nativeConnection, taskQueue, workflowsPath: path.join(here, '../support/backup-workflow.ts'), activities: recorded,
    interceptors: { activity: [heartbeatInterceptor] },
    // Heartbeats reach the server at least every second, so a short heartbeat timeout is fair.
    maxHeartbeatThrottleInterval: '1s', defaultHeartbeatThrottleInterval: '1s',
  });
  workerRun = worker.run();
});

afterAll(async () => {
  worker?.shutdown();
  await workerRun;
  await nativeConnection?.close();
  await connection?.close();
  await world?.stop();
});

function run(input: Omit<BackupStepsInput, 'customerId' | 'serverId' | 'idempotencyKey'>) {
  const id = randomBytes(6).toString('hex');
  return client.workflow.execute('backupSteps', {
    taskQueue, workflowId: `backup-steps-${id}`, workflowExecutionTimeout: '10m',
    args: [{ customerId: world.userId, serverId: '1', idempotencyKey: `test:${id}`, ...input } satisfies BackupStepsInput],
  });
}

/** Pids of processes on this machine whose command line is exactly `words`. */
async function processesRunning(...words: string[]): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (cmdline === `${words.join('\0')}\0`) found.push(Number(entry));
  }
  return found;
}

test('slow steps that each outlast the heartbeat timeout: the backup and its restore complete in their first attempts', async () => {
  // Every whole-object read from storage (the backup's verification re-read, the restore's download) first stalls 10 s.
  const s3 = testS3();
  s3.middlewareStack.add((next, context) => async (args) => {
    if (context.commandName === 'GetObjectCommand' && !(args.input as { Range?: string }).Range) await sleep(10_000);
    return next(args);
  }, { step: 'initialize', name: 'slowWholeReads' });
  current = activitiesOn(world.service({ s3, preBackupCommand: 'sleep 10', postRestoreCommand: 'sleep 10' }));
  attempts.length = 0;
  const backup = await run({ restore: true, startToCloseTimeout: '5m', heartbeatTimeout: '4s', maximumAttempts: 1 });
  expect(attempts.map((a) => [a.attempt, a.error])).toEqual([[1, undefined]]);
  const row = await world.database.db.selectFrom('backups').selectAll().where('id', '=', backup.backupId).executeTakeFirstOrThrow();
  expect(row.status).toBe('completed');
});

test('an attempt that timed out is cancelled and stops its work on the server; the retry completes the backup', async () => {
  // The first attempt's pre-backup step hangs (a marker tells attempts apart); later ones pass at once.
  const marker = path.join(world.dir, 'first-attempt-ran');
  current = activitiesOn(world.service({ preBackupCommand: `if mkdir ${marker} 2>/dev/null; then exec sleep 313; fi` }));
  attempts.length = 0;
  const started = Date.now();
  const backup = await run({ restore: false, startToCloseTimeout: '40s', heartbeatTimeout: '4s', maximumAttempts: 3 });
  const row = await world.database.db.selectFrom('backups').selectAll().where('id', '=', backup.backupId).executeTakeFirstOrThrow();
  expect(row.status).toBe('completed');

  // Attempt 1 ran past its 40 s and was cancelled (the answer to its heartbeat), soon after.
  const first = attempts.find((a) => a.attempt === 1)!;
  expect(first.error).toBeInstanceOf(CancelledFailure);
  expect(first.endedAt - started).toBeLessThan(40_000 + 20_000);
  const second = attempts.find((a) => a.attempt === 2);
  expect(second).toBeDefined();
  expect(second!.error).toBeUndefined();
  // Its hanging command on the server is gone, not running on beside the retry.
  const deadline = Date.now() + 15_000;
  while ((await processesRunning('sleep', '313')).length > 0 && Date.now() < deadline) await sleep(500);
  expect(await processesRunning('sleep', '313')).toEqual([]);
});

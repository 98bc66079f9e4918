/**
 * Proves: a running Temporal worker that opens and closes many SSH connections while the garbage
 * collector frees their ciphers (forced, and by itself over thousands of key exchanges) stays alive, and has loaded no native addon built on node::ObjectWrap
 * (since Node 24.19 freeing such an addon's object aborts the process — ssh2's optional sshcrypto.node
 * did, killing every in-flight activity). The worker is a real child process run with --expose-gc.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startSshd, type TestSshd } from '../support/sshd.ts';
import type { SshChurnWorkerConfig } from '../support/ssh-churn-worker.ts';
import type { sshChurn } from '../support/ssh-churn-workflow.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const taskQueue = `ssh-churn-${randomBytes(4).toString('hex')}`;
let sshd: TestSshd;
let worker: ChildProcess | undefined;
let workerExit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
let output = '';

beforeAll(async () => {
  sshd = await startSshd({ config: ['MaxStartups 100', 'MaxSessions 100'] });
  const privateKeyPath = path.join(sshd.dir, 'churn_client_key');
  await writeFile(privateKeyPath, sshd.target.privateKey, { mode: 0o600 });
  const { privateKey: _key, ...target } = sshd.target;
  const config: SshChurnWorkerConfig = { temporalAddress: process.env.TEMPORAL_ADDRESS!, taskQueue, target: { ...target, privateKeyPath } };
  worker = spawn(process.execPath, ['--expose-gc', path.join(here, '../support/ssh-churn-worker.ts')], {
    env: { ...process.env, BERTH_SSH_CHURN_WORKER: JSON.stringify(config) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  worker.stderr!.on('data', (d: Buffer) => { output = (output + d.toString()).slice(-8000); });
  workerExit = new Promise((resolve) => worker!.once('exit', (code, signal) => resolve({ code, signal })));
  await new Promise<void>((resolve, reject) => {
    worker!.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('ready')) resolve(); });
    void workerExit.then(({ code }) => reject(new Error(`the worker exited (${code}) before it was ready:\n${output}`)));
  });
});

afterAll(async () => {
  if (worker && worker.exitCode === null && worker.signalCode === null) {
    worker.kill('SIGTERM');
    await workerExit;
  }
  await sshd?.stop();
});

test('a worker churning SSH connections and key exchanges under garbage collection stays alive and loads no ObjectWrap addon', async () => {
  const connection = await Connection.connect({ address: process.env.TEMPORAL_ADDRESS! });
  try {
    const client = new Client({ connection });
    const handle = await client.workflow.start<typeof sshChurn>('sshChurn', {
      taskQueue, workflowId: `ssh-churn-${randomBytes(4).toString('hex')}`, args: [60], workflowExecutionTimeout: '4m',
    });
    // If the worker aborts, the workflow never completes: fail on the exit instead of waiting out the timeout.
    const died = workerExit.then(({ code, signal }) => {
      throw new Error(`the worker died (exit ${code}, signal ${signal}) while churning SSH connections:\n${output}`);
    });
    const result = await Promise.race([handle.result(), died]);
    expect(result.connections).toBe(60);
    expect(result.loadedAddons.filter((a) => a.objectWrap).map((a) => a.file)).toEqual([]);
    // Temporal's own core bridge is a native (N-API) addon: the check saw real loaded addons, not none at all.
    expect(result.loadedAddons.some((a) => a.file.includes('core-bridge'))).toBe(true);
    expect(worker!.exitCode).toBeNull();
    expect(worker!.signalCode).toBeNull();
  } finally {
    await connection.close();
  }
});

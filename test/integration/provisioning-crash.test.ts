import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import { ActivityFailure, ApplicationFailure } from '@temporalio/common';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHetznerClient, type HetznerClient } from '../../activities/cloud/hetzner/client.ts';
import { cloudLabels } from '../../activities/cloud/provisioning.ts';
import { createUser } from '../../db/repositories/users.ts';
import { ErrorType } from '../../lib/errors.ts';
import { createLogger } from '../../lib/log.ts';
import { startLocalCloud, type LocalCloud } from '../../sim/hetzner/local-cloud.ts';
import { useTestDatabase } from '../support/db.ts';
import type { ProvisionInput } from '../support/provisioning-workflow.ts';
import type { ProvisioningWorkerConfig } from '../support/provisioning-worker.ts';

// Proves: killing the worker (SIGKILL, a real child process) during provisioning, 20 times
// at random points, ends each time with exactly one server for the customer and a completed
// workflow; and with a real worker, an unavailable or removed first candidate falls back to the next one, while
// all candidates unavailable fails the workflow with CapacityUnavailable and creates nothing.

const here = path.dirname(fileURLToPath(import.meta.url));
const log = createLogger('provisioning-crash-test', 'warn');
const testDb = useTestDatabase({ name: 'provisioning_crash' });
const taskQueue = `provisioning-crash-${randomBytes(4).toString('hex')}`;
const candidates = [{ serverType: 'cx23', location: 'fsn1' }, { serverType: 'cx33', location: 'nbg1' }];

describe('provisioning under worker crashes', () => {
  let cloud: LocalCloud;
  let hetzner: HetznerClient;
  let connection: Connection;
  let client: Client;
  let workerConfig: ProvisioningWorkerConfig;
  const children = new Set<ChildProcess>();

  /** Starts a worker child process and resolves once it polls. */
  async function startWorker(): Promise<ChildProcess> {
    const child = spawn(process.execPath, [path.join(here, '../support/provisioning-worker.ts')], {
      env: { ...process.env, BERTH_PROVISIONING_WORKER: JSON.stringify(workerConfig) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    child.once('exit', () => children.delete(child));
    let output = '';
    child.stderr!.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (d: Buffer) => {
        if (d.toString().includes('ready')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`worker exited (${code}) before it was ready:\n${output}`)));
    });
    return child;
  }

  async function kill(child: ChildProcess): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  async function newCustomer(): Promise<string> {
    return (await createUser(testDb.db, { email: `c-${randomUUID()}@example.com`, passwordHash: 'x', name: 'Customer' })).id;
  }

  function start(customerId: string, cands = candidates) {
    const input: ProvisionInput = { customerId, candidates: cands };
    return client.workflow.start('provisionCustomer', {
      taskQueue, workflowId: `provision-${customerId}`, args: [input], workflowTaskTimeout: '2s', workflowExecutionTimeout: '5m',
    });
  }

  async function serversOf(customerId: string) {
    return hetzner.servers.list({ label_selector: `${cloudLabels.customer}=${customerId}` });
  }

  beforeAll(async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-provisioning-crash-'));
    // Slower actions than elsewhere, so random kills land inside create/start as well as SSH and setup.
    cloud = await startLocalCloud({ dataDir: path.join(dir, 'cloud'), actionDurationMs: { create_server: 400, start_server: 400 }, log });
    hetzner = createHetznerClient({ endpoint: cloud.endpoint, token: 't', actionPoll: { initialMs: 50, maxMs: 200 } });
    const bundle = await bundleWorkflowCode({ workflowsPath: path.join(here, '../support/provisioning-workflow.ts'), logger: new DefaultLogger('WARN') });
    const bundlePath = path.join(dir, 'workflow-bundle.js');
    writeFileSync(bundlePath, bundle.code);
    workerConfig = {
      temporalAddress: process.env.TEMPORAL_ADDRESS!, taskQueue, bundlePath, hcloudEndpoint: cloud.endpoint,
      databaseUrl: testDb.url, schema: testDb.schema, masterKeyBase64: randomBytes(32).toString('base64'),
    };
    connection = await Connection.connect({ address: process.env.TEMPORAL_ADDRESS! });
    client = new Client({ connection });
  });

  afterAll(async () => {
    for (const child of [...children]) await kill(child);
    await connection?.close();
    await hetzner?.close();
    await cloud?.stop({ removeData: true });
  });

  it('falls back to the next candidate when the first is unavailable; all unavailable is CapacityUnavailable', async () => {
    const worker = await startWorker();
    try {
      cloud.setFaults({ unavailable: [{ serverType: 'cx23', location: 'fsn1' }] });
      const fallback = await newCustomer();
      const result = await (await start(fallback)).result();
      expect(result).toMatchObject({ serverType: 'cx33', location: 'nbg1', assistantVersion: 'berth-standin/1.0.0' });
      expect(await serversOf(fallback)).toHaveLength(1);

      // A type Hetzner removed from GET /server_types is "not available" too: the walk goes on.
      cloud.setFaults({ removedServerTypes: ['cx23'] });
      const removed = await newCustomer();
      expect(await (await start(removed)).result()).toMatchObject({ serverType: 'cx33', location: 'nbg1' });
      expect(await serversOf(removed)).toHaveLength(1);

      cloud.setFaults({ unavailable: [{ serverType: 'cx23' }, { serverType: 'cx33' }] });
      const none = await newCustomer();
      const failure = await (await start(none)).result().then(() => undefined, (err: unknown) => err);
      expect(failure).toBeInstanceOf(WorkflowFailedError);
      const cause = (failure as WorkflowFailedError).cause;
      expect(cause).toBeInstanceOf(ApplicationFailure);
      expect((cause as ApplicationFailure).type).toBe(ErrorType.CapacityUnavailable);
      expect(cause instanceof ActivityFailure).toBe(false);
      expect(await serversOf(none)).toEqual([]);
    } finally {
      cloud.setFaults({});
      await kill(worker);
    }
  });

  it('20 SIGKILLs of the worker at random points: each customer ends with exactly one server and a completed workflow', async () => {
    const customers: string[] = [];
    const kills: number[] = [];
    for (let i = 0; i < 20; i++) {
      // A new provisioning begins with each worker life, so every kill lands inside some provisioning.
      const customerId = await newCustomer();
      customers.push(customerId);
      await start(customerId);
      const worker = await startWorker();
      const delay = 100 + Math.floor(Math.random() * 2400);
      kills.push(delay);
      await sleep(delay);
      await kill(worker);
    }
    const finalWorker = await startWorker();
    try {
      const results = await Promise.all(customers.map((id) => client.workflow.getHandle(`provision-${id}`).result()));
      for (const [i, customerId] of customers.entries()) {
        const servers = await serversOf(customerId);
        expect(servers.map((s) => String(s.id)), `customer ${i} (killed after ${kills[i]} ms)`).toEqual([results[i]!.serverId]);
        const description = await client.workflow.getHandle(`provision-${customerId}`).describe();
        expect(description.status.name).toBe('COMPLETED');
        const live = await testDb.db.selectFrom('servers').select('providerId').where('userId', '=', customerId).where('deletedAt', 'is', null).execute();
        expect(live.map((r) => String(r.providerId))).toEqual([results[i]!.serverId]);
      }
      // The kills really cut provisionings short: their histories show retried activity attempts or
      // workflow tasks that timed out with the killed worker.
      let interrupted = 0;
      for (const customerId of customers) {
        const history = await client.workflow.getHandle(`provision-${customerId}`).fetchHistory();
        if ((history.events ?? []).some((e) => (e.activityTaskStartedEventAttributes?.attempt ?? 1) > 1 || e.workflowTaskTimedOutEventAttributes)) interrupted++;
      }
      expect(interrupted).toBeGreaterThanOrEqual(10);
    } finally {
      await kill(finalWorker);
    }
  });
});

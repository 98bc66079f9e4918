/**
 * Global setup of the production tier: Berth in production's shape on this machine, every part on free
 * ports so that it can run beside the run command. PostgreSQL 15; a Temporal cluster on it, started
 * from temporal.yaml with the schema and namespace scripts docker-compose.yml runs; the workflow
 * bundle and web build the image makes; migrations; two worker and two web processes started with the
 * image's commands (`node worker/main.ts`, `node api/main.ts`); MinIO, maildev and the local cloud
 * stand in for S3, the mail provider and Hetzner, as in the run command. Every process's output goes
 * to test-results/production-stack.log.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Connection } from '@temporalio/client';
import type { TestProject } from 'vitest/node';
import { rootDir } from '../../lib/paths.ts';
import { errorMessage } from '../../lib/errors.ts';
import { freePort, httpOk, startProcess, type LineSink, type ManagedProcess } from '../../lib/process.ts';
import { startPostgres, postgresUser, testSettings } from '../../scripts/services/postgres.ts';
import { startTemporalCluster } from '../../scripts/services/temporal-cluster.ts';
import { startMinio } from '../../scripts/services/minio.ts';
import { startMaildev } from '../../scripts/services/maildev.ts';
import { buildWebIfNeeded } from '../../scripts/services/web-build.ts';

/** What the production tier's tests are given (vitest `inject`). */
export interface ProductionStack {
  webUrls: string[];
  temporalAddress: string;
  namespace: string;
  taskQueue: string;
  databaseUrl: string;
  maildevUrl: string;
  cloudEndpoint: string;
  cloudToken: string;
  /** The local cloud's data folder: each server's disk is `servers/<id>/disk/`. */
  cloudDataDir: string;
  /** The environment the worker and web processes run with (local mode: local stand-ins, no real secrets). */
  appEnv: Record<string, string>;
  /** The worker processes the stack started. */
  workerPids: number[];
  logFile: string;
}

const logFile = path.join(rootDir, 'test-results', 'production-stack.log');

/** A sink writing every process's lines to one log file (appending: tests add their own processes). */
export function fileSink(file: string): { sink: LineSink; close(): Promise<void> } {
  const out = createWriteStream(file, { flags: 'a' });
  return {
    sink: (name, line) => { out.write(`${name.padEnd(10)}| ${line}\n`); },
    close: () => new Promise((resolve) => out.end(resolve)),
  };
}

/** True once the task queue has a poller with this identity (the SDK's default is `<pid>@<hostname>`). */
export async function workerPolls(address: string, namespace: string, taskQueue: string, pid: number): Promise<boolean> {
  const connection = await Connection.connect({ address, connectTimeout: 1000 });
  try {
    const res = await connection.workflowService.describeTaskQueue({ namespace, taskQueue: { name: taskQueue }, taskQueueType: 1 });
    return (res.pollers ?? []).some((p) => p.identity === `${pid}@${hostname()}`);
  } finally {
    await connection.close();
  }
}

/** Starts one worker process with the image's command; resolves once it polls the task queue. */
export async function startProductionWorker(stack: Pick<ProductionStack, 'appEnv' | 'temporalAddress' | 'namespace' | 'taskQueue'>, name: string, sink: LineSink): Promise<ManagedProcess> {
  const worker = await startProcess({ name, command: process.execPath, args: ['worker/main.ts'], cwd: rootDir, env: { ...process.env, ...stack.appEnv }, sink });
  const deadline = Date.now() + 120_000;
  while (!(await workerPolls(stack.temporalAddress, stack.namespace, stack.taskQueue, worker.pid).catch(() => false))) {
    const exited = await Promise.race([worker.exited.then((code) => ({ code })), new Promise<null>((resolve) => setTimeout(() => resolve(null), 300))]);
    if (exited) throw new Error(`${name} exited (${exited.code}) before it polled the task queue`);
    if (Date.now() > deadline) {
      await worker.stop();
      throw new Error(`${name} did not poll the task queue within 120 s`);
    }
  }
  return worker;
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const dir = await mkdtemp(path.join(tmpdir(), 'berth-production-'));
  await mkdir(path.dirname(logFile), { recursive: true });
  await rm(logFile, { force: true });
  const log = fileSink(logFile);
  const { sink } = log;
  const stops: (() => Promise<void>)[] = [];
  const teardown = async () => {
    for (const stop of stops.reverse()) await stop().catch(() => {});
    await log.close();
    await rm(dir, { recursive: true, force: true });
  };
  const keep = <T extends { stop(): Promise<void> }>(part: T): T => { stops.push(() => part.stop()); return part; };
  try {
    const namespace = 'berth';
    const taskQueue = 'berth';
    const postgres = keep(await startPostgres({ dataDir: path.join(dir, 'postgres'), port: await freePort(), sink, settings: testSettings }));
    const postgresPort = Number(new URL(postgres.url).port);
    const cloudToken = randomBytes(24).toString('hex');
    const cloudDataDir = path.join(dir, 'cloud');
    const cloudPort = await freePort();
    const [temporal, minio, maildev] = await Promise.all([
      startTemporalCluster({ postgres: { port: postgresPort, user: postgresUser }, namespace, sink }).then(keep),
      startMinio({ dataDir: path.join(dir, 'minio'), port: await freePort(), consolePort: await freePort(),
        accessKeyId: 'berth-production', secretAccessKey: randomBytes(16).toString('hex'), buckets: ['berth-backups'], sink }).then(keep),
      startMaildev({ smtpPort: await freePort(), webPort: await freePort(), sink, name: 'maildev' }).then(keep),
      startProcess({
        name: 'cloud', command: process.execPath, args: ['sim/hetzner/main.ts'], cwd: rootDir, sink, stopTimeoutMs: 30_000,
        env: { ...process.env, HCLOUD_SIM_PORT: String(cloudPort), HCLOUD_SIM_DATA_DIR: cloudDataDir, HCLOUD_SIM_TOKEN: cloudToken },
        ready: () => httpOk(`http://127.0.0.1:${cloudPort}/v1/locations`),
      }).then(keep),
      buildWebIfNeeded(sink),
    ]);
    const webPorts = [await freePort(), await freePort()];
    const webUrls = webPorts.map((p) => `http://localhost:${p}`);
    const bundle = path.join(dir, 'workflows.js');
    const appEnv: Record<string, string> = {
      // Production's shape, with local stand-ins for Stripe, Resend and Hetzner: those run only in local mode.
      BERTH_MODE: 'local',
      NODE_ENV: 'test',
      LOG_LEVEL: 'info',
      DATABASE_URL: postgres.url,
      TEMPORAL_ADDRESS: temporal.address,
      TEMPORAL_NAMESPACE: namespace,
      TEMPORAL_TASK_QUEUE: taskQueue,
      WORKFLOW_BUNDLE: bundle,
      AWS_ENDPOINT_URL_S3: minio.endpoint,
      AWS_ACCESS_KEY_ID: minio.accessKeyId,
      AWS_SECRET_ACCESS_KEY: minio.secretAccessKey,
      AWS_REGION: 'us-east-1',
      S3_BUCKET: 'berth-backups',
      HCLOUD_ENDPOINT: `http://127.0.0.1:${cloudPort}/v1`,
      HCLOUD_TOKEN: cloudToken,
      SMTP_URL: maildev.smtpUrl,
      APP_URL: webUrls[0]!,
      SESSION_SECRET: randomBytes(32).toString('hex'),
      MASTER_KEY: randomBytes(32).toString('base64'),
      MASTER_KEY_ID: 'production-tier-1',
      ASSISTANT_GATEWAY_HOST: 'server-address',
    };

    // What the image's build and its one-shot `migrate` service do.
    const oneShot = async (name: string, args: string[]) => {
      const proc = await startProcess({ name, command: process.execPath, args, cwd: rootDir, env: { ...process.env, ...appEnv }, sink });
      const code = await proc.exited;
      if (code !== 0) throw new Error(`${name} (node ${args.join(' ')}) exited ${code}; see ${logFile}`);
    };
    await oneShot('bundle', ['worker/bundle.ts', bundle]);
    await oneShot('migrate', ['db/cli.ts', 'up']);

    const stack: ProductionStack = {
      webUrls, temporalAddress: temporal.address, namespace, taskQueue, databaseUrl: postgres.url, maildevUrl: maildev.webUrl,
      cloudEndpoint: appEnv.HCLOUD_ENDPOINT!, cloudToken, cloudDataDir, appEnv, workerPids: [], logFile,
    };
    const workers = await Promise.all(['worker-1', 'worker-2'].map((name) => startProductionWorker(stack, name, sink).then(keep)));
    stack.workerPids = workers.map((w) => w.pid);
    await Promise.all(webPorts.map((port, i) => startProcess({
      name: `web-${i + 1}`, command: process.execPath, args: ['api/main.ts'], cwd: rootDir, sink,
      // Each web process links to itself: the local checkout keeps its sessions in the process that made them.
      env: { ...process.env, ...appEnv, PORT: String(port), APP_URL: webUrls[i]! },
      ready: () => httpOk(`http://127.0.0.1:${port}/readyz`).then(async (ok) => ok && (await fetch(`http://127.0.0.1:${port}/readyz`)).ok),
    }).then(keep)));
    project.provide('production', stack);
  } catch (err) {
    await teardown();
    throw new Error(`the production stack did not start (its log: ${logFile}): ${errorMessage(err)}`);
  }
  return teardown;
}

declare module 'vitest' {
  export interface ProvidedContext {
    production: ProductionStack;
  }
}

import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { startProcess, httpOk, type LineSink, type ManagedProcess } from '../../lib/process.ts';
import { cacheDir } from '../../lib/paths.ts';

/** Berth's search attributes, registered on the dev server; production registers the same (docs/runbook.md). */
export const berthSearchAttributes = {
  CustomerId: 'Keyword',
  Plan: 'Keyword',
  Stage: 'Keyword',
  ServerId: 'Keyword',
  NeedsAttention: 'Bool',
} as const;

export interface TemporalDevServer {
  address: string;
  uiUrl: string | null;
  process: ManagedProcess;
  stop(): Promise<void>;
}

/** True once the frontend answers a real gRPC call, not just a TCP connect. */
async function temporalAnswers(address: string): Promise<boolean> {
  const connection = await Connection.connect({ address, connectTimeout: 1000 });
  try {
    await connection.workflowService.getSystemInfo({});
    return true;
  } finally {
    await connection.close();
  }
}

/**
 * Starts the Temporal CLI dev server (built by scripts/bootstrap) with its history in a SQLite file,
 * Berth's search attributes registered, and the Web UI unless `uiPort` is null.
 */
export async function startTemporalDevServer(opts: {
  dataDir: string;
  port: number;
  uiPort: number | null;
  namespace?: string;
  sink?: LineSink;
}): Promise<TemporalDevServer> {
  await mkdir(opts.dataDir, { recursive: true });
  const args = [
    'server', 'start-dev',
    '--ip', '127.0.0.1',
    '--port', String(opts.port),
    '--db-filename', path.join(opts.dataDir, 'temporal.sqlite'),
    '--namespace', opts.namespace ?? 'default',
    '--log-level', 'warn',
    ...Object.entries(berthSearchAttributes).flatMap(([name, type]) => ['--search-attribute', `${name}=${type}`]),
    ...(opts.uiPort === null ? ['--headless'] : ['--ui-port', String(opts.uiPort)]),
  ];
  const address = `127.0.0.1:${opts.port}`;
  const uiUrl = opts.uiPort === null ? null : `http://localhost:${opts.uiPort}`;
  const process = await startProcess({
    name: 'temporal',
    command: path.join(cacheDir, 'bin', 'temporal'),
    args,
    sink: opts.sink,
    readyTimeoutMs: 90_000,
    ready: async () => (await temporalAnswers(address)) && (uiUrl === null || (await httpOk(uiUrl))),
  });
  return { address, uiUrl, process, stop: () => process.stop() };
}

/** True once a worker polls `taskQueue`: the worker process is ready to run workflows. */
export async function workerPolling(address: string, namespace: string, taskQueue: string): Promise<boolean> {
  const connection = await Connection.connect({ address, connectTimeout: 1000 });
  try {
    const res = await connection.workflowService.describeTaskQueue({ namespace, taskQueue: { name: taskQueue }, taskQueueType: 1 });
    return (res.pollers?.length ?? 0) > 0;
  } finally {
    await connection.close();
  }
}

/**
 * The worker container's health check: `node worker/health.ts` exits 0 while a worker of this host
 * (the SDK's identity is `<pid>@<hostname>`; a container has its own hostname) polls the task queue,
 * and 1 otherwise, saying why.
 */
import { hostname } from 'node:os';
import { Connection } from '@temporalio/client';
import { loadWorkerConfig } from './config.ts';

const config = loadWorkerConfig();
const connection = await Connection.connect({ address: config.TEMPORAL_ADDRESS, connectTimeout: 5000 });
try {
  const { pollers } = await connection.workflowService.describeTaskQueue({
    namespace: config.TEMPORAL_NAMESPACE, taskQueue: { name: config.TEMPORAL_TASK_QUEUE }, taskQueueType: 1,
  });
  const ours = (pollers ?? []).filter((p) => p.identity?.endsWith(`@${hostname()}`));
  if (ours.length === 0) {
    process.stderr.write(`no worker of ${hostname()} polls task queue ${config.TEMPORAL_TASK_QUEUE}\n`);
    process.exitCode = 1;
  }
} finally {
  await connection.close();
}

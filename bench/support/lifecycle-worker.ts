/**
 * One Berth worker process for the scale benchmarks: the real workflow bundle (worker/bundle.ts) and
 * the in-memory activity doubles (test/doubles), so what is measured is Temporal and the workflow code,
 * not Hetzner or SSH. Prometheus metrics (sticky cache hits and misses) on BENCH_METRICS_ADDRESS.
 * Environment: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_TASK_QUEUE, WORKFLOW_BUNDLE,
 * BENCH_METRICS_ADDRESS (host:port), BENCH_MAX_CACHED (optional: the SDK's default otherwise).
 */
import { NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { createLifecycleDoubles } from '../../test/doubles/lifecycle-activities.ts';

const env = (name: string) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

Runtime.install({
  logger: undefined,
  telemetryOptions: { metrics: { prometheus: { bindAddress: env('BENCH_METRICS_ADDRESS') } } },
});
const connection = await NativeConnection.connect({ address: env('TEMPORAL_ADDRESS') });
const doubles = createLifecycleDoubles();
const worker = await Worker.create({
  connection,
  namespace: env('TEMPORAL_NAMESPACE'),
  taskQueue: env('TEMPORAL_TASK_QUEUE'),
  workflowBundle: { codePath: env('WORKFLOW_BUNDLE') },
  activities: doubles.activities,
  ...(process.env.BENCH_MAX_CACHED ? { maxCachedWorkflows: Number(process.env.BENCH_MAX_CACHED) } : {}),
});
process.stdout.write(`ready maxCachedWorkflows=${worker.options.maxCachedWorkflows}\n`);
await worker.run();
await connection.close();

/**
 * Shared setup of the time-skipping workflow tests: the Java test server (with the lifecycle's
 * search attributes registered: it rejects upserts of unknown ones and the workflow task would
 * retry forever), one prebuilt workflow bundle per file, and a worker per test over fresh doubles.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime, Worker, bundleWorkflowCode, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { Connection, WorkflowHandle } from '@temporalio/client';
import proto from '@temporalio/proto';
const { temporal } = proto;
import { customerLifecycle } from '../../workflows/customer-lifecycle.ts';
import { billingEventSignal, userActivitySignal } from '../../workflows/messages.ts';
import { lifecycleSearchAttributeKeys } from '../../workflows/search-attributes.ts';
import type { LifecycleDoubles } from '../doubles/lifecycle-activities.ts';
import type { LifecycleConfig } from '../../workflows/deadlines.ts';
import type { BillingEvent } from '../../workflows/messages.ts';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const workflowsPath = path.join(repoRoot, 'workflows/index.ts');
export const day = 86_400_000;

/** The Java time-skipping server: TEMPORAL_TEST_SERVER, else the one scripts/bootstrap caches. */
export function testServerPath(): string {
  return process.env.TEMPORAL_TEST_SERVER ?? path.join(repoRoot, '.cache/temporal-test-server/temporal-test-server');
}

let runtimeInstalled = false;
function quietRuntime(): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  Runtime.install({ logger: new DefaultLogger('WARN') });
}

/** Registers CustomerId, Plan, Stage, ServerId (Keyword) and NeedsAttention (Bool) on a namespace. */
export async function registerLifecycleSearchAttributes(connection: Connection, namespace = 'default'): Promise<void> {
  const types = temporal.api.enums.v1.IndexedValueType;
  const searchAttributes: Record<string, (typeof types)[keyof typeof types]> = {};
  for (const key of lifecycleSearchAttributeKeys) {
    searchAttributes[key.name] = key.type === 'BOOL' ? types.INDEXED_VALUE_TYPE_BOOL : types.INDEXED_VALUE_TYPE_KEYWORD;
  }
  await connection.operatorService.addSearchAttributes({ namespace, searchAttributes });
}

export async function createLifecycleTestEnv(): Promise<TestWorkflowEnvironment> {
  quietRuntime();
  const env = await TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: { type: 'existing-path', path: testServerPath() } },
  });
  await registerLifecycleSearchAttributes(env.connection);
  return env;
}

export async function bundleLifecycleWorkflows(): Promise<WorkflowBundleWithSourceMap> {
  quietRuntime();
  return bundleWorkflowCode({ workflowsPath, logger: new DefaultLogger('WARN') });
}

/** Test timings: production offsets, but no idle stop and no daily backups unless a test asks. */
export function testConfig(overrides: Partial<LifecycleConfig> = {}): Partial<LifecycleConfig> {
  return { idle: { afterMs: null, policy: 'stop' }, dailyBackupEveryMs: null, ...overrides };
}

let taskQueueSeq = 0;

/** Runs `fn` with a worker over the doubles on a fresh task queue. */
export async function withWorker<T>(env: TestWorkflowEnvironment, bundle: WorkflowBundleWithSourceMap, doubles: LifecycleDoubles,
  fn: (taskQueue: string) => Promise<T>): Promise<T> {
  const taskQueue = `lifecycle-test-${process.pid}-${++taskQueueSeq}`;
  const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: bundle, activities: doubles.activities });
  return worker.runUntil(fn(taskQueue));
}

/** A billing event at virtual time `atMs`. */
export function billingEvent(eventId: string, type: BillingEvent['type'], atMs: number, fields: Omit<BillingEvent, 'eventId' | 'type' | 'created'> = {}): BillingEvent {
  return { eventId, type, created: new Date(atMs).toISOString(), ...fields };
}

export const iso = (ms: number): string => new Date(ms).toISOString();

export type LifecycleHandle = WorkflowHandle<typeof customerLifecycle>;

/** What a story script gets: the handle, the start time, a billing signal, and "wait until t0 + ms". */
export type StoryScript = (ctx: { handle: LifecycleHandle; t0: number; signal: (e: BillingEvent) => Promise<void>; at: (ms: number) => Promise<void> }) => Promise<void>;

let storySeq = 0;

/**
 * One customer's story: start by signal (the `first` billing event, or a registration), let
 * virtual time pass, always terminate at the end.
 */
export async function runStory(env: TestWorkflowEnvironment, bundle: WorkflowBundleWithSourceMap, doubles: LifecycleDoubles, config: Partial<LifecycleConfig>,
  script: StoryScript, first?: (t0: number) => BillingEvent): Promise<LifecycleHandle> {
  const customerId = `c${++storySeq}`;
  return withWorker(env, bundle, doubles, async (taskQueue) => {
    const t0 = await env.currentTimeMs();
    const start = first?.(t0);
    const handle = start
      ? await env.client.workflow.signalWithStart(customerLifecycle, { workflowId: `customer-${customerId}`, taskQueue, args: [{ customerId, config }], signal: billingEventSignal, signalArgs: [start] })
      : await env.client.workflow.signalWithStart(customerLifecycle, { workflowId: `customer-${customerId}`, taskQueue, args: [{ customerId, config }], signal: userActivitySignal, signalArgs: [{ source: 'registration' }] });
    const at = async (ms: number): Promise<void> => {
      const now = await env.currentTimeMs();
      await env.sleep(Math.max(1, t0 + ms - now));
      await settled(handle);
    };
    const signal = (e: BillingEvent) => handle.signal(billingEventSignal, e);
    try {
      await env.sleep(1_000);
      await script({ handle, t0, signal, at });
    } finally {
      const { status } = await handle.describe();
      if (status.name === 'RUNNING') await handle.terminate('test over');
    }
    return handle;
  });
}

/**
 * Waits (in real time, briefly) until the workflow has no workflow task and no activity attempt in
 * flight, so a loaded machine cannot make an assertion look at a state the workflow is still
 * computing. Activities waiting out a retry backoff do not count: virtual time moves those on.
 */
export async function settled(handle: LifecycleHandle, limitMs = 15_000): Promise<void> {
  const giveUpAt = Date.now() + limitMs;
  while (Date.now() < giveUpAt) {
    const { raw, status } = await handle.describe();
    if (status.name !== 'RUNNING') return;
    const busyActivity = (raw.pendingActivities ?? []).some((a) => a.state === temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED);
    if (!raw.pendingWorkflowTask && !busyActivity) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

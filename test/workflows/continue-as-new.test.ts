/**
 * A simulated year of monthly renewals with daily backups: the workflow continues-as-new whenever a
 * run's history reaches `maxHistoryEvents`, and no run grows past that bound plus one loop
 * iteration. State crosses each boundary: nothing is sent twice, the server is kept.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { customerLifecycle } from '../../workflows/customer-lifecycle.ts';
import { billingEventSignal, lifecycleWorkflowId, stateQuery } from '../../workflows/messages.ts';
import { createLifecycleDoubles } from '../doubles/lifecycle-activities.ts';
import { billingEvent, bundleLifecycleWorkflows, createLifecycleTestEnv, day, iso, testConfig, withWorker } from './support.ts';

let env: TestWorkflowEnvironment;
let bundle: WorkflowBundleWithSourceMap;
beforeAll(async () => {
  [env, bundle] = await Promise.all([createLifecycleTestEnv(), bundleLifecycleWorkflows()]);
});
afterAll(async () => {
  await env?.teardown();
});

/** Continue-as-new threshold used here, and the bound every run must stay under. */
const maxHistoryEvents = 300;
/** One loop iteration adds at most this many events after the check (a daily backup with its timer and tasks). */
const iterationSlack = 40;

it('a year of monthly renewals continues-as-new with each run under the history bound', async () => {
  const doubles = createLifecycleDoubles();
  const customerId = 'year';
  const runIds = await withWorker(env, bundle, doubles, async (taskQueue) => {
    const t0 = await env.currentTimeMs();
    const handle = await env.client.workflow.signalWithStart(customerLifecycle, {
      workflowId: lifecycleWorkflowId(customerId), taskQueue,
      args: [{ customerId, config: testConfig({ dailyBackupEveryMs: day, maxHistoryEvents }) }],
      signal: billingEventSignal,
      signalArgs: [billingEvent('evt_0', 'checkout_completed', t0, { accessEndsAt: iso(t0 + 30 * day), plan: 'pro' })],
    });
    for (let month = 1; month <= 12; month++) {
      await env.sleep(t0 + month * 30 * day - day - (await env.currentTimeMs()));
      await handle.signal(billingEventSignal, billingEvent(`evt_${month}`, 'invoice_paid', t0 + month * 30 * day - day, { accessEndsAt: iso(t0 + (month + 1) * 30 * day) }));
    }
    await env.sleep(2 * day);
    const view = await handle.query(stateQuery);
    expect(view).toMatchObject({ stage: 'active', willRenew: true, accessEndsAt: iso(t0 + 13 * 30 * day) });
    await handle.terminate('test over');

    const runs: string[] = [];
    let maxEvents = 0;
    let runId: string | undefined = handle.signaledRunId;
    while (runId) {
      runs.push(runId);
      const history: Awaited<ReturnType<ReturnType<typeof env.client.workflow.getHandle>['fetchHistory']>> = await env.client.workflow.getHandle(handle.workflowId, runId).fetchHistory();
      const events = history.events ?? [];
      maxEvents = Math.max(maxEvents, events.length);
      expect(events.length).toBeLessThanOrEqual(maxHistoryEvents + iterationSlack);
      runId = events.at(-1)?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId ?? undefined;
    }
    console.log(`year: ${runs.length} runs, largest run ${maxEvents} events`);
    return runs;
  });
  expect(runIds.length).toBeGreaterThanOrEqual(4);
  expect(doubles.mails.map((m) => m.kind)).toEqual(['welcome', 'server_ready']);
  expect(doubles.steps().filter((s) => s.startsWith('ensureServer'))).toEqual(['ensureServer cx33@nbg1']);
  const daily = doubles.steps().filter((s) => s === 'createBackup daily').length;
  expect(daily).toBeGreaterThanOrEqual(360);
  expect(daily).toBeLessThanOrEqual(363);
  expect(new Set(doubles.processedEventIds).size).toBe(13);
});

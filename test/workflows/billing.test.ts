/**
 * Billing as the lifecycle workflow takes it, on the time-skipping server: events in any order
 * reach one state (each fact ordered on its own), access starts only on money, and nothing that
 * arrives while the customer's data is purged is lost.
 */
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { LifecycleConfig } from '../../workflows/deadlines.ts';
import { stateQuery, userActivitySignal, type BillingEvent, type LifecycleView } from '../../workflows/messages.ts';
import { createLifecycleDoubles, type LifecycleDoubles } from '../doubles/lifecycle-activities.ts';
import {
  billingEvent, bundleLifecycleWorkflows, createLifecycleTestEnv, day, iso, runStory, settled, testConfig, type LifecycleHandle, type StoryScript,
} from './support.ts';

let env: TestWorkflowEnvironment;
let bundle: WorkflowBundleWithSourceMap;

beforeAll(async () => {
  bundle = await bundleLifecycleWorkflows();
});
beforeEach(async () => {
  env = await createLifecycleTestEnv();
});
afterEach(async () => {
  await env?.teardown();
});

function story(doubles: LifecycleDoubles, config: Partial<LifecycleConfig>, script: StoryScript, first?: (t0: number) => BillingEvent) {
  return runStory(env, bundle, doubles, config, script, first);
}

/** Lets virtual time run in small steps until the view satisfies `ok` (or gives up after 10 s of it). */
async function until(handle: LifecycleHandle, ok: (view: LifecycleView) => boolean): Promise<LifecycleView> {
  let view = await handle.query(stateQuery);
  for (let i = 0; i < 40 && !ok(view); i++) {
    await env.sleep(250);
    await settled(handle);
    view = await handle.query(stateQuery);
  }
  return view;
}

const provisioned = ['mail welcome', 'ensureServer cx23@nbg1', 'setupAssistant', 'mail server_ready'];

describe('a renewal whose payment fails, delivered in either order', () => {
  // Paid by card at t0 for 30 days; at the renewal R the invoice fails (created R) and the
  // subscription goes past_due (created R + 1 s). Stripe may deliver them in either order.
  const R = 30 * day;
  const paid = (t0: number) => billingEvent('evt_checkout', 'checkout_completed', t0, { plan: 'starter', paid: true, accessEndsAt: iso(t0 + R) });
  const failed = (t0: number) => billingEvent('evt_failed', 'payment_failed', t0 + R, { accessEndsAt: iso(t0 + R) });
  const pastDue = (t0: number) => billingEvent('evt_past_due', 'subscription_updated', t0 + R + 1000,
    { subscriptionStatus: 'past_due', accessEndsAt: iso(t0 + 2 * R), cancelAtPeriodEnd: false });

  it.each([
    ['the failure first (Stripe\'s order)', [failed, pastDue]],
    ['the past_due update first (the reported case)', [pastDue, failed]],
  ])('%s: past due, the payment-failing reminder, grace of 7 days, then the final backup and delete', async (_order, renewal) => {
    const doubles = createLifecycleDoubles();
    const views: Partial<LifecycleView>[] = [];
    await story(doubles, testConfig(), async ({ handle, t0, signal, at }) => {
      await at(R + 1000);
      for (const event of renewal) await signal(event(t0));
      await at(R + 2000);
      const view = await handle.query(stateQuery);
      views.push({ stage: view.stage, accessEndsAt: view.accessEndsAt, willRenew: view.willRenew });
      expect(view).toMatchObject({ stage: 'past_due', accessEndsAt: iso(t0 + R + 7 * day), willRenew: false });
      await at(R + 8 * day);
      expect((await handle.query(stateQuery)).stage).toBe('expired');
    }, paid);
    expect(doubles.steps()).toEqual([
      ...provisioned,
      'mail access_ending 7d',
      'createBackup expiry', 'mail access_ending 3d',
      'createBackup expiry', 'mail access_ending 1d',
      'createBackup final', 'deleteServer (verified backup)', 'audit server_deleted', 'mail expired',
    ]);
    expect(doubles.mails.find((m) => m.kind === 'access_ending')!.data).toMatchObject({ reason: 'payment_failing' });
    expect([...doubles.processedEventIds].sort()).toEqual(['evt_checkout', 'evt_failed', 'evt_past_due']);
  });
});

describe('access starts only on money', () => {
  const unpaidCheckout = (t0: number) => billingEvent('evt_checkout', 'checkout_completed', t0, { plan: 'starter', paid: false });
  const incomplete = (t0: number) => billingEvent('evt_sub', 'subscription_updated', t0, { subscriptionStatus: 'incomplete', accessEndsAt: iso(t0 + 30 * day), plan: 'starter', cancelAtPeriodEnd: false });

  it('a SEPA checkout waits without a server until the debit succeeds days later, then provisions', async () => {
    const doubles = createLifecycleDoubles();
    await story(doubles, testConfig(), async ({ handle, t0, signal, at }) => {
      await signal(incomplete(t0));
      await at(3 * day);
      expect(await handle.query(stateQuery)).toMatchObject({ stage: 'awaiting_payment', server: null });
      expect(doubles.steps()).toEqual(['mail welcome']);
      await signal(billingEvent('evt_async_paid', 'checkout_completed', t0 + 3 * day, { plan: 'starter', paid: true }));
      await signal(billingEvent('evt_invoice_paid', 'invoice_paid', t0 + 3 * day, { accessEndsAt: iso(t0 + 30 * day), plan: 'starter' }));
      const view = await until(handle, (v) => v.stage === 'active');
      expect(view).toMatchObject({ stage: 'active', accessEndsAt: iso(t0 + 30 * day), willRenew: true });
    }, unpaidCheckout);
    expect(doubles.steps()).toEqual(provisioned);
  });

  it('a SEPA checkout whose debit fails never gets a server', async () => {
    const doubles = createLifecycleDoubles();
    await story(doubles, testConfig(), async ({ handle, t0, signal, at }) => {
      await signal(incomplete(t0));
      await at(3 * day);
      await signal(billingEvent('evt_async_failed', 'payment_failed', t0 + 3 * day, { plan: 'starter' }));
      await signal(billingEvent('evt_expired', 'subscription_updated', t0 + 4 * day, { subscriptionStatus: 'incomplete_expired', accessEndsAt: iso(t0 + 30 * day), cancelAtPeriodEnd: false }));
      await at(10 * day);
      expect(await handle.query(stateQuery)).toMatchObject({ stage: 'awaiting_payment', server: null });
    }, unpaidCheckout);
    expect(doubles.steps()).toEqual(['mail welcome']);
  });
});

describe('messages that arrive while the customer is purged', () => {
  /** Doubles whose purge audit waits until the test lets it go, and a promise of its start. */
  function heldPurge() {
    let reached!: () => void;
    let release!: () => void;
    const purging = new Promise<void>((resolve) => { reached = resolve; });
    const released = new Promise<void>((resolve) => { release = resolve; });
    const doubles = createLifecycleDoubles({
      holdAudit: async (action) => {
        if (action !== 'customer_purged') return;
        reached();
        await released;
      },
    });
    return { doubles, purging, release };
  }
  const cancelled = (t0: number) => billingEvent('evt_1', 'checkout_completed', t0, { accessEndsAt: iso(t0 + 30 * day), plan: 'starter', cancelAtPeriodEnd: true });
  const purgeAt = 30 * day + 7 * day;

  it('a re-subscription during the purge is not lost: it starts the next life, which provisions and marks it processed', async () => {
    const { doubles, purging, release } = heldPurge();
    let firstRunId = '';
    await story(doubles, testConfig(), async ({ handle, t0, signal }) => {
      firstRunId = (await handle.describe()).runId;
      const sleeping = env.sleep(purgeAt + 1000);
      await purging;
      await signal(billingEvent('evt_back', 'checkout_completed', t0 + purgeAt, { accessEndsAt: iso(t0 + purgeAt + 30 * day), plan: 'starter', cancelAtPeriodEnd: false, paid: true }));
      release();
      await sleeping;
      const view = await until(handle, (v) => v.stage === 'active');
      expect(view).toMatchObject({ stage: 'active', plan: 'starter', willRenew: true, accessEndsAt: iso(t0 + purgeAt + 30 * day) });
      expect((await env.client.workflow.getHandle(handle.workflowId, firstRunId).describe()).status.name).toBe('CONTINUED_AS_NEW');
    }, cancelled);
    expect(doubles.steps().slice(-5)).toEqual(['mail expired', 'audit customer_purged', 'ensureServer cx23@nbg1', 'setupAssistant', 'mail server_ready']);
    // Marked processed once, by the run where it took effect; the welcome mail is not sent again.
    const marks = doubles.calls.filter((c) => c.name === 'markEventsProcessed' && (c.input as { eventIds: string[] }).eventIds.includes('evt_back'));
    expect(marks).toHaveLength(1);
    expect(marks[0]!.runId).not.toBe(firstRunId);
    expect(doubles.mails.filter((m) => m.kind === 'welcome')).toHaveLength(1);
  });

  it('a customer who comes back (user activity) during the purge starts a next life awaiting payment', async () => {
    const { doubles, purging, release } = heldPurge();
    await story(doubles, testConfig(), async ({ handle }) => {
      const sleeping = env.sleep(purgeAt + 1000);
      await purging;
      await handle.signal(userActivitySignal, { source: 'dashboard' });
      release();
      await sleeping;
      const view = await until(handle, (v) => v.stage === 'awaiting_payment');
      expect(view).toMatchObject({ stage: 'awaiting_payment', server: null, plan: 'starter' });
      expect(view.timeline.at(-1)?.what).toMatch(/came back after the purge/);
    }, cancelled);
  });

  it('with nothing arriving, the purge completes the workflow as before', async () => {
    const doubles = createLifecycleDoubles();
    const handle = await story(doubles, testConfig(), async ({ handle, at }) => {
      await at(purgeAt + 1000);
      expect((await handle.result()).stage).toBe('purged');
    }, cancelled);
    expect((await handle.describe()).status.name).toBe('COMPLETED');
  });
});

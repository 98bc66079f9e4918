/**
 * The customer lifecycle on the time-skipping server: one test per path, each asserting the exact
 * activities and mails in order (bookkeeping calls — projection rows, processed event ids — are
 * left out of the step lists and checked where they matter).
 */
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { ApplicationFailure } from '@temporalio/common';
import { ErrorType } from '../../lib/errors.ts';
import {
  approveDeletionWithoutBackupUpdate, backupNowUpdate, lifecycleWorkflowId, backupProgressSignal, powerOffUpdate, stateQuery, userActivitySignal,
  type BillingEvent, type LifecycleView,
} from '../../workflows/messages.ts';
import { NeedsAttentionKey, StageKey, ServerIdKey } from '../../workflows/search-attributes.ts';
import type { LifecycleConfig } from '../../workflows/deadlines.ts';
import { createLifecycleDoubles, type LifecycleDoubles } from '../doubles/lifecycle-activities.ts';
import { billingEvent, bundleLifecycleWorkflows, createLifecycleTestEnv, day, iso, runStory, settled, testConfig, type StoryScript } from './support.ts';
import { spreadHash } from '../../workflows/deadlines.ts';

let env: TestWorkflowEnvironment;
let bundle: WorkflowBundleWithSourceMap;

beforeAll(async () => {
  bundle = await bundleLifecycleWorkflows();
});
// A test server per test: virtual time and anything a failed test leaves behind stay with that test.
beforeEach(async () => {
  env = await createLifecycleTestEnv();
});
afterEach(async () => {
  await env?.teardown();
});

/** One customer's story on this file's test server (support.ts runStory). */
function story(doubles: LifecycleDoubles, config: Partial<LifecycleConfig>, script: StoryScript, first?: (t0: number) => BillingEvent) {
  return runStory(env, bundle, doubles, config, script, first);
}

/** The message of the failure an update was rejected with (the validator's or handler's error). */
async function rejection(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    return (err as { cause?: { message?: string } }).cause?.message ?? String(err);
  }
  throw new Error('the update was accepted');
}

const provisioned = ['mail welcome', 'ensureServer cx23@nbg1', 'setupAssistant', 'mail server_ready'];

describe('customer lifecycle', () => {
  it('new customer: pays, gets a server, gets the ready mail (pay → provision → ready)', async () => {
    const doubles = createLifecycleDoubles();
    let stage = '';
    await story(doubles, testConfig(), async ({ handle, t0, signal, at }) => {
      expect((await handle.query(stateQuery)).stage).toBe('awaiting_payment');
      await signal(billingEvent('evt_1', 'checkout_completed', t0, { accessEndsAt: new Date(t0 + 30 * day).toISOString(), plan: 'starter' }));
      await at(2_000);
      // Provisioning is a few activities: give a loaded machine a few more virtual seconds, in small steps.
      let view = await handle.query(stateQuery);
      for (let i = 0; i < 40 && (view.server === null || view.stage !== 'active'); i++) {
        await env.sleep(250);
        await settled(handle);
        view = await handle.query(stateQuery);
      }
      stage = view.stage;
      expect(view.server).toMatchObject({ power: 'running', serverType: 'cx23' });
      const sa = (await handle.describe()).typedSearchAttributes;
      expect(sa.get(StageKey)).toBe('active');
      expect(sa.get(ServerIdKey)).toBe(doubles.servers.values().next().value!.serverId);
      expect(sa.get(NeedsAttentionKey)).toBe(false);
    });
    expect(stage).toBe('active');
    expect(doubles.steps()).toEqual(provisioned);
    expect(doubles.servers.size).toBe(1);
    expect(doubles.processedEventIds).toEqual(['evt_1']);
    expect(doubles.projections.map((p) => p.stage)).toContain('provisioning');
    expect(doubles.projections.at(-1)).toMatchObject({ stage: 'active', plan: 'starter', willRenew: true });
  });

  it('auto-renewing customer over several periods gets no expiry mails and keeps the server', async () => {
    const doubles = createLifecycleDoubles();
    await story(doubles, testConfig(), async ({ handle, t0, signal, at }) => {
      for (let period = 1; period <= 3; period++) {
        await at(period * 30 * day - day);
        await signal(billingEvent(`evt_paid_${period}`, 'invoice_paid', t0 + period * 30 * day - day, { accessEndsAt: iso(t0 + (period + 1) * 30 * day) }));
      }
      await at(115 * day);
      const view = await handle.query(stateQuery);
      expect(view).toMatchObject({ stage: 'active', willRenew: true, accessEndsAt: iso(t0 + 120 * day) });
    }, (t0) => billingEvent('evt_1', 'checkout_completed', t0, { accessEndsAt: iso(t0 + 30 * day), plan: 'starter' }));
    expect(doubles.steps()).toEqual(provisioned);
    expect(doubles.mails.map((m) => m.kind)).toEqual(['welcome', 'server_ready']);
  });

  it('cancel at period end: 7/3/1 reminders once each, backups at 3 and 1 days, verified final backup, delete, expired mail', async () => {
    const doubles = createLifecycleDoubles();
    let end = 0;
    await story(doubles, testConfig(), async ({ handle, t0, signal, at }) => {
      end = t0 + 30 * day;
      await at(10 * day);
      await signal(billingEvent('evt_cancel', 'subscription_updated', t0 + 10 * day, { cancelAtPeriodEnd: true }));
      await at(22 * day);
      expect((await handle.query(stateQuery)).stage).toBe('active');
      await at(23 * day + 1000);
      expect((await handle.query(stateQuery)).stage).toBe('expiring');
      expect(doubles.steps().slice(4)).toEqual(['mail access_ending 7d']);
      await at(30 * day + 1000);
      const view = await handle.query(stateQuery);
      expect(view.stage).toBe('expired');
      expect(view.server).toBeNull();
      expect(view.dataKeptUntil).toBe(iso(end + 7 * day));
      expect((await handle.describe()).typedSearchAttributes.get(StageKey)).toBe('expired');
    }, (t0) => billingEvent('evt_1', 'checkout_completed', t0, { accessEndsAt: iso(t0 + 30 * day), plan: 'starter' }));
    expect(doubles.steps()).toEqual([
      ...provisioned,
      'mail access_ending 7d',
      'createBackup expiry', 'mail access_ending 3d',
      'createBackup expiry', 'mail access_ending 1d',
      'createBackup final', 'deleteServer (verified backup)', 'audit server_deleted', 'mail expired',
    ]);
    const finalBackup = doubles.backups.find((b) => b.reason === 'final')!;
    expect(doubles.calls.find((c) => c.name === 'deleteServer')!.input).toMatchObject({ verifiedBackupId: finalBackup.backupId });
    expect(doubles.mails.find((m) => m.kind === 'expired')!.data).toMatchObject({ accessEndsAt: iso(end), dataKeptUntil: iso(end + 7 * day) });
    expect(new Set(doubles.mails.map((m) => m.idempotencyKey)).size).toBe(doubles.mails.length);
    expect(doubles.servers.size).toBe(0);
  });

  it('renewal after expiry: new server, restore of the latest verified backup, ready mail', async () => {
    const doubles = createLifecycleDoubles();
    await story(doubles, testConfig(), async ({ handle, t0, signal, at }) => {
      await at(31 * day);
      expect((await handle.query(stateQuery)).stage).toBe('expired');
      await signal(billingEvent('evt_back', 'checkout_completed', t0 + 31 * day, { accessEndsAt: iso(t0 + 61 * day), cancelAtPeriodEnd: false }));
      await at(31 * day + 2000);
      const view = await handle.query(stateQuery);
      expect(view).toMatchObject({ stage: 'active', dataKeptUntil: null, willRenew: true });
    }, (t0) => billingEvent('evt_1', 'checkout_completed', t0, { accessEndsAt: iso(t0 + 30 * day), plan: 'starter', cancelAtPeriodEnd: true }));
    const finalBackup = doubles.backups.find((b) => b.reason === 'final')!;
    expect(doubles.steps().slice(-5)).toEqual([
      'ensureServer cx23@nbg1', 'setupAssistant', 'latestVerifiedBackup', `restoreBackup ${finalBackup.backupId}`, 'mail server_ready',
    ]);
    expect(doubles.mails.at(-1)!.data).toMatchObject({ restored: true });
    expect(doubles.servers.size).toBe(1);
  });

  it('retention over: the customer is purged and the workflow completes', async () => {
    const doubles = createLifecycleDoubles();
    const handle = await story(doubles, testConfig(), async ({ handle, at }) => {
      await at(30 * day + 7 * day + 1000);
      const result = await handle.result();
      expect(result.stage).toBe('purged');
    }, (t0) => billingEvent('evt_1', 'checkout_completed', t0, { accessEndsAt: iso(t0 + 30 * day), plan: 'starter', cancelAtPeriodEnd: true }));
    expect((await handle.describe()).status.name).toBe('COMPLETED');
    expect(doubles.steps().slice(-3)).toEqual(['audit server_deleted', 'mail expired', 'audit customer_purged']);
    expect(doubles.projections.at(-1)!.stage).toBe('purged');
  });

  it('payment failed → recovered: past due with a payment-failing reminder, then active again without expiry', async () => {
    const doubles = createLifecycleDoubles();
    await story(doubles, testConfig(), async ({ handle, t0, signal, at }) => {
      await at(30 * day);
      await signal(billingEvent('evt_fail', 'payment_failed', t0 + 30 * day, { accessEndsAt: iso(t0 + 60 * day) }));
      await at(30 * day + 1000);
      expect(await handle.query(stateQuery)).toMatchObject({ stage: 'past_due', accessEndsAt: iso(t0 + 37 * day), willRenew: false });
      expect((await handle.describe()).typedSearchAttributes.get(StageKey)).toBe('past_due');
      await at(32 * day);
      await signal(billingEvent('evt_paid', 'invoice_paid', t0 + 32 * day, { accessEndsAt: iso(t0 + 60 * day) }));
      await at(45 * day);
      expect(await handle.query(stateQuery)).toMatchObject({ stage: 'active', accessEndsAt: iso(t0 + 60 * day), willRenew: true });
    }, (t0) => billingEvent('evt_1', 'checkout_completed', t0, { accessEndsAt: iso(t0 + 30 * day), plan: 'starter' }));
    expect(doubles.steps()).toEqual([...provisioned, 'mail access_ending 7d']);
    expect(doubles.mails.at(-1)!.data).toMatchObject({ reason: 'payment_failing' });
  });

  it('payment failed → grace over → expiry flow', async () => {
    const doubles = createLifecycleDoubles();
    await story(doubles, testConfig(), async ({ handle, t0, signal, at }) => {
      await at(30 * day);
      await signal(billingEvent('evt_fail', 'payment_failed', t0 + 30 * day, { accessEndsAt: iso(t0 + 60 * day) }));
      await signal(billingEvent('evt_fail_2', 'payment_failed', t0 + 33 * day, { accessEndsAt: iso(t0 + 60 * day) }));
      await at(38 * day);
      expect((await handle.query(stateQuery)).stage).toBe('expired');
    }, (t0) => billingEvent('evt_1', 'checkout_completed', t0, { accessEndsAt: iso(t0 + 30 * day), plan: 'starter' }));
    expect(doubles.steps()).toEqual([
      ...provisioned,
      'mail access_ending 7d',
      'createBackup expiry', 'mail access_ending 3d',
      'createBackup expiry', 'mail access_ending 1d',
      'createBackup final', 'deleteServer (verified backup)', 'audit server_deleted', 'mail expired',
    ]);
  });

  it('duplicate and out-of-order billing events take effect once, stale ones not at all', async () => {
    const doubles = createLifecycleDoubles();
    await story(doubles, testConfig(), async ({ handle, t0, signal, at }) => {
      // invoice.paid arrives before checkout.session.completed; then duplicates of both.
      const paid = billingEvent('evt_paid', 'invoice_paid', t0 + 2000, { accessEndsAt: iso(t0 + 30 * day), plan: 'starter' });
      const checkout = billingEvent('evt_checkout', 'checkout_completed', t0 + 1000, { accessEndsAt: iso(t0 + 30 * day), plan: 'pro' });
      await signal(paid);
      await signal(paid);
      await signal(checkout);
      await signal(paid);
      await at(3 * day);
      await signal(billingEvent('evt_cancel', 'subscription_updated', t0 + 3 * day, { cancelAtPeriodEnd: true }));
      // An older "resume" delivered late must not undo the newer cancellation.
      await signal(billingEvent('evt_old_resume', 'subscription_updated', t0 + 2 * day, { cancelAtPeriodEnd: false }));
      await signal(billingEvent('evt_cancel', 'subscription_updated', t0 + 3 * day, { cancelAtPeriodEnd: true }));
      await at(3 * day + 1000);
      const view = await handle.query(stateQuery);
      expect(view).toMatchObject({ stage: 'active', plan: 'starter', willRenew: false });
      expect(view.timeline.filter((e) => e.what.startsWith('ignored duplicate')).length).toBe(3);
      expect(view.timeline.filter((e) => e.what.startsWith('ignored stale')).map((e) => e.what)).toEqual([
        'ignored stale billing event evt_checkout (checkout_completed)',
        'ignored stale billing event evt_old_resume (subscription_updated)',
      ]);
    });
    expect(doubles.steps()).toEqual(provisioned);
    expect(doubles.servers.size).toBe(1);
    expect([...doubles.processedEventIds].sort()).toEqual(['evt_cancel', 'evt_checkout', 'evt_old_resume', 'evt_paid']);
  });

  it('final backup failing repeatedly: server kept, NeedsAttention, retried with backoff; operator override needs a reason and is audited', async () => {
    const doubles = createLifecycleDoubles({ failBackups: { times: 1_000, reason: 'final' } });
    await story(doubles, testConfig(), async ({ handle, at }) => {
      await at(30 * day + 3 * 3_600_000);
      const view = await handle.query(stateQuery);
      expect(view.stage).toBe('expiring');
      expect(view.needsAttention).toBe(true);
      expect(view.server).toMatchObject({ power: 'running' });
      expect((await handle.describe()).typedSearchAttributes.get(NeedsAttentionKey)).toBe(true);
      expect(doubles.servers.size).toBe(1);
      expect(doubles.steps()).not.toContain('deleteServer (verified backup)');
      const failedFinals = doubles.steps().filter((s) => s === 'createBackup final ✗').length;
      // 3 attempts per try; tries at 0, +15 min, +45 min, +1 h 45 min (backoff doubles).
      expect(failedFinals).toBe(12);
      expect(await rejection(handle.executeUpdate(approveDeletionWithoutBackupUpdate, { args: [{ approvedBy: 'ops@berth', reason: 'too short' }] }))).toMatch(/at least 20 characters/);
      await handle.executeUpdate(approveDeletionWithoutBackupUpdate, { args: [{ approvedBy: 'ops@berth', reason: 'customer confirmed in ticket 42 that the data may go' }] });
      await at(30 * day + 3 * 3_600_000 + 2000);
      expect((await handle.query(stateQuery)).stage).toBe('expired');
    }, (t0) => billingEvent('evt_1', 'checkout_completed', t0, { accessEndsAt: iso(t0 + 30 * day), plan: 'starter', cancelAtPeriodEnd: true }));
    expect(doubles.steps().slice(-5)).toEqual([
      'createBackup final ✗', 'audit approve_deletion_without_backup', 'deleteServer (operator override)', 'audit server_deleted', 'mail expired',
    ]);
    expect(doubles.audit[0]).toMatchObject({ actor: 'operator:ops@berth', action: 'approve_deletion_without_backup', reason: 'customer confirmed in ticket 42 that the data may go' });
  });

  it.each(['stop', 'hibernate'] as const)('idle 24 h → %s, user activity wakes the server', async (policy) => {
    const doubles = createLifecycleDoubles();
    await story(doubles, testConfig({ idle: { afterMs: day, policy } }), async ({ handle, at }) => {
      await at(day + 60_000);
      expect((await handle.query(stateQuery)).stage).toBe('idle');
      expect((await handle.describe()).typedSearchAttributes.get(StageKey)).toBe('idle');
      await handle.signal(userActivitySignal, { source: 'dashboard' });
      await at(day + 120_000);
      expect((await handle.query(stateQuery)).stage).toBe('active');
    }, (t0) => billingEvent('evt_1', 'checkout_completed', t0, { accessEndsAt: iso(t0 + 30 * day), plan: 'starter' }));
    expect(doubles.steps()).toEqual([...provisioned, ...(policy === 'stop' ? ['powerOff', 'powerOn'] : ['createBackup before_hibernate', 'hibernate', 'wakeFromSnapshot cx23@nbg1'])]);
    expect(doubles.servers.size).toBe(1);
  });

  it('provisioning falls back over the plan candidates; when all fail: NeedsAttention, "we are on it" mail, retry later', async () => {
    const doubles = createLifecycleDoubles({ unavailableServerTypes: ['cx23', 'cpx12'] });
    await story(doubles, testConfig(), async ({ handle, at }) => {
      await at(60_000);
      expect(await handle.query(stateQuery)).toMatchObject({ stage: 'provisioning', needsAttention: true });
      doubles.options.unavailableServerTypes = ['cx23'];
      await at(3_600_000 + 120_000);
      expect(await handle.query(stateQuery)).toMatchObject({ stage: 'active', needsAttention: false });
    }, (t0) => billingEvent('evt_1', 'checkout_completed', t0, { accessEndsAt: iso(t0 + 30 * day), plan: 'starter' }));
    expect(doubles.steps()).toEqual([
      'mail welcome',
      'ensureServer cx23@nbg1 ✗', 'ensureServer cx23@fsn1 ✗', 'ensureServer cpx12@hel1 ✗', 'mail provisioning_trouble',
      'ensureServer cx23@nbg1 ✗', 'ensureServer cx23@fsn1 ✗', 'ensureServer cpx12@hel1', 'setupAssistant', 'mail server_ready',
    ]);
  });

  it('host key mismatch when the server first answers: provisioning fails non-retryably, NeedsAttention, one server, one try per hour', async () => {
    const doubles = createLifecycleDoubles({ hostKeyMismatch: true });
    await story(doubles, testConfig(), async ({ handle, at }) => {
      await at(60_000);
      const view = await handle.query(stateQuery);
      expect(view).toMatchObject({ stage: 'provisioning', needsAttention: true, server: null });
      expect(view.attentionReason).toMatch(/host key/);
      expect((await handle.describe()).typedSearchAttributes.get(NeedsAttentionKey)).toBe(true);
      // One attempt (non-retryable), and no other candidate tried: they would find the same server.
      expect(doubles.steps()).toEqual(['mail welcome', 'ensureServer cx23@nbg1 ✗', 'mail provisioning_trouble']);
      await at(3 * 3_600_000 + 60_000);
      expect(await handle.query(stateQuery)).toMatchObject({ stage: 'provisioning', needsAttention: true });
    }, (t0) => billingEvent('evt_1', 'checkout_completed', t0, { accessEndsAt: iso(t0 + 30 * day), plan: 'starter' }));
    // No retry storm: one try per provisioning retry interval (1 h), the mail only once.
    expect(doubles.steps()).toEqual(['mail welcome', 'ensureServer cx23@nbg1 ✗', 'mail provisioning_trouble',
      'ensureServer cx23@nbg1 ✗', 'ensureServer cx23@nbg1 ✗', 'ensureServer cx23@nbg1 ✗']);
    expect(doubles.calls.filter((c) => c.name === 'ensureServer').every((c) => c.failed)).toBe(true);
    expect(doubles.servers.size).toBe(1);
  });

  it('host key mismatch at assistant setup: NeedsAttention naming the host key, the server kept and not duplicated', async () => {
    const doubles = createLifecycleDoubles({ hostKeyMismatch: 'setupAssistant' });
    await story(doubles, testConfig(), async ({ handle, at }) => {
      await at(60_000);
      const view = await handle.query(stateQuery);
      expect(view).toMatchObject({ stage: 'provisioning', needsAttention: true });
      expect(view.attentionReason).toMatch(/setupAssistant: .*presented host key/);
      expect((await handle.describe()).typedSearchAttributes.get(NeedsAttentionKey)).toBe(true);
      await at(3_600_000 + 60_000);
    }, (t0) => billingEvent('evt_1', 'checkout_completed', t0, { accessEndsAt: iso(t0 + 30 * day), plan: 'starter' }));
    expect(doubles.steps()).toEqual(['mail welcome', 'ensureServer cx23@nbg1', 'setupAssistant ✗', 'ensureServer cx23@nbg1', 'setupAssistant ✗']);
    expect(doubles.servers.size).toBe(1);
  });

  it('renewal after expiry with a corrupt latest backup: falls back to the previous verified one, NeedsAttention, ready mail', async () => {
    const doubles = createLifecycleDoubles();
    let corrupt = '';
    let previous = '';
    await story(doubles, testConfig(), async ({ handle, t0, signal, at }) => {
      await at(31 * day);
      expect((await handle.query(stateQuery)).stage).toBe('expired');
      // The final backup was verified when made, but its object no longer passes verification.
      corrupt = doubles.backups.find((b) => b.reason === 'final')!.backupId;
      previous = doubles.backups.at(-2)!.backupId;
      doubles.options.corruptBackupIds = [corrupt];
      await signal(billingEvent('evt_back', 'checkout_completed', t0 + 31 * day, { accessEndsAt: iso(t0 + 61 * day), cancelAtPeriodEnd: false }));
      await at(31 * day + 2000);
      const view = await handle.query(stateQuery);
      expect(view).toMatchObject({ stage: 'active', needsAttention: true });
      expect(view.attentionReason).toContain(`backups ${corrupt} failed verification; restored ${previous}`);
      expect((await handle.describe()).typedSearchAttributes.get(NeedsAttentionKey)).toBe(true);
    }, (t0) => billingEvent('evt_1', 'checkout_completed', t0, { accessEndsAt: iso(t0 + 30 * day), plan: 'starter', cancelAtPeriodEnd: true }));
    expect(doubles.backups.find((b) => b.backupId === previous)).toMatchObject({ reason: 'expiry' });
    expect(doubles.steps().slice(-7)).toEqual([
      'ensureServer cx23@nbg1', 'setupAssistant',
      'latestVerifiedBackup', `restoreBackup ${corrupt} ✗`,
      'latestVerifiedBackup', `restoreBackup ${previous}`,
      'mail server_ready',
    ]);
    expect(doubles.calls.filter((c) => c.name === 'latestVerifiedBackup').map((c) => c.input)).toMatchObject([
      { excludingBackupIds: [] }, { excludingBackupIds: [corrupt] },
    ]);
    expect(doubles.mails.at(-1)).toMatchObject({ kind: 'server_ready', data: { restored: true } });
    expect(doubles.servers.size).toBe(1);
  });

  it('updates: backup now answers with the verified backup; validators reject what cannot be done', async () => {
    const doubles = createLifecycleDoubles();
    await story(doubles, testConfig(), async ({ handle }) => {
      expect(await rejection(handle.executeUpdate(backupNowUpdate))).toMatch(/no server/);
    });
    const doubles2 = createLifecycleDoubles();
    await story(doubles2, testConfig(), async ({ handle, at }) => {
      // Provisioning first: on a loaded machine one second of virtual time may not be enough for it.
      await at(60_000);
      const backup = await handle.executeUpdate(backupNowUpdate);
      expect(backup).toMatchObject({ reason: 'manual' });
      await handle.executeUpdate(powerOffUpdate);
      expect(await rejection(handle.executeUpdate(powerOffUpdate))).toMatch(/not running/);
      expect(await rejection(handle.executeUpdate(approveDeletionWithoutBackupUpdate, { args: [{ approvedBy: 'ops', reason: 'a long enough reason for the audit log' }] }))).toMatch(/only allowed/);
    }, (t0) => billingEvent('evt_1', 'checkout_completed', t0, { accessEndsAt: iso(t0 + 30 * day), plan: 'starter' }));
    expect(doubles.steps()).toEqual(['mail welcome']);
    expect(doubles2.steps()).toEqual([...provisioned, 'createBackup manual', 'powerOff']);
  });

  it('backup progress reported by the backup activity is visible in the state query until the backup ends', async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => { release = resolve; });
    const doubles = createLifecycleDoubles({
      // What the worker's reportProgress does: signal the workflow that runs the backup.
      reportBackupProgress: (workflowId, progress) => env.client.workflow.getHandle(workflowId).signal(backupProgressSignal, progress),
      holdBackup: () => held,
    });
    await story(doubles, testConfig(), async ({ handle, at }) => {
      // Provisioning first: on a loaded machine one second of virtual time may not be enough for it.
      await at(60_000);
      // The update keeps virtual time still while the activity is held (only result() and sleep() skip it).
      const done = handle.executeUpdate(backupNowUpdate);
      let during: LifecycleView['backupInProgress'] = null;
      // Generous: on a loaded machine the signal may take seconds to arrive.
      for (const deadline = Date.now() + 30_000; Date.now() < deadline && during?.bytesDone !== 512;) {
        during = (await handle.query(stateQuery)).backupInProgress;
        if (during?.bytesDone !== 512) await new Promise((resolve) => setTimeout(resolve, 25));
      }
      expect(during).toMatchObject({ reason: 'manual', phase: 'streaming', bytesDone: 512, bytesEstimate: 1024 });
      const key = during!.idempotencyKey;
      expect(key).toMatch(/^customer-c\d+:backup:manual:/);
      // A report of another backup is ignored.
      await handle.signal(backupProgressSignal, { idempotencyKey: 'customer-x:backup:manual:other', backupId: 'other', phase: 'verifying', bytesDone: 1024, bytesEstimate: 1024, at: new Date().toISOString() });
      expect((await handle.query(stateQuery)).backupInProgress).toMatchObject({ phase: 'streaming', bytesDone: 512 });
      release();
      const backup = await done;
      expect(await handle.query(stateQuery)).toMatchObject({ backupInProgress: null, recentBackups: [backup] });
      // A report that arrives after the backup ended does not bring it back.
      await handle.signal(backupProgressSignal, { idempotencyKey: key, backupId: backup.backupId, phase: 'verifying', bytesDone: 1024, bytesEstimate: 1024, at: new Date().toISOString() });
      expect((await handle.query(stateQuery)).backupInProgress).toBeNull();
    }, (t0) => billingEvent('evt_1', 'checkout_completed', t0, { accessEndsAt: iso(t0 + 30 * day), plan: 'starter' }));
    expect(doubles.steps()).toEqual([...provisioned, 'createBackup manual']);
  });

  it('plan downgrade to a type with a smaller disk: rebuilt from a verified backup on the new plan, never bounced in a loop', async () => {
    const doubles = createLifecycleDoubles();
    await story(doubles, testConfig(), async ({ handle, t0, signal, at }) => {
      await at(60_000);
      expect(doubles.steps()).toEqual(['mail welcome', 'ensureServer cx33@nbg1', 'setupAssistant', 'mail server_ready']);
      // Pro (cx33, 80 GB) → Starter (cx23 and cpx12, 40 GB): Hetzner cannot shrink the disk in place.
      await signal(billingEvent('evt_2', 'subscription_updated', t0 + 120_000, { plan: 'starter' }));
      await at(6 * 3_600_000);
      const view = await handle.query(stateQuery);
      expect(view).toMatchObject({ stage: 'active', plan: 'starter', needsAttention: false, server: { serverType: 'cx23', power: 'running' } });
      expect(view.timeline.map((e) => e.what).join('\n')).toMatch(/cx23, cpx12 cannot take server srv-\d+ in place; deleted after verified backup bak-\d+/);
    }, (t0) => billingEvent('evt_1', 'checkout_completed', t0, { accessEndsAt: iso(t0 + 30 * day), plan: 'pro' }));
    const backup = doubles.backups.find((b) => b.reason === 'before_plan_change')!;
    expect(doubles.steps()).toEqual([
      'mail welcome', 'ensureServer cx33@nbg1', 'setupAssistant', 'mail server_ready',
      // Each type refused once, before the server was touched: no stop/start at all, let alone every hour.
      'changeServerType cx23 ✗', 'changeServerType cpx12 ✗',
      'createBackup before_plan_change', 'deleteServer (verified backup)', 'audit server_deleted',
      'ensureServer cx23@nbg1', 'setupAssistant', 'latestVerifiedBackup', `restoreBackup ${backup.backupId}`, 'mail server_ready',
    ]);
    expect(doubles.calls.filter((c) => c.name === 'powerOff' || c.name === 'powerOn')).toEqual([]);
    // Invariants 2 and 1 (docs/invariants.md): one server, the new one; the old one went only with that verified backup.
    expect([...doubles.servers.values()].map((s) => [s.serverType, s.diskGb])).toEqual([['cx23', 40]]);
    expect(doubles.calls.find((c) => c.name === 'deleteServer')!.input).toMatchObject({ verifiedBackupId: backup.backupId });
    expect(doubles.mails.at(-1)).toMatchObject({ kind: 'server_ready', data: { restored: true, plan: 'starter' } });
  });

  it('plan upgrade changes the type in place, passing over a type that cannot be had', async () => {
    const doubles = createLifecycleDoubles({ unavailableServerTypes: ['cx33'] });
    await story(doubles, testConfig(), async ({ handle, t0, signal, at }) => {
      await at(60_000);
      await signal(billingEvent('evt_2', 'subscription_updated', t0 + 120_000, { plan: 'pro' }));
      await at(3_600_000);
      expect(await handle.query(stateQuery)).toMatchObject({ plan: 'pro', needsAttention: false, server: { serverType: 'cpx32' } });
    }, (t0) => billingEvent('evt_1', 'checkout_completed', t0, { accessEndsAt: iso(t0 + 30 * day), plan: 'starter' }));
    expect(doubles.steps()).toEqual([...provisioned, 'changeServerType cx33 ✗', 'changeServerType cpx32']);
    expect([...doubles.servers.values()].map((s) => [s.serverType, s.diskGb])).toEqual([['cpx32', 160]]);
  });

  it('a plan change that fails otherwise is not retried every hour: NeedsAttention, the server keeps its type', async () => {
    const doubles = createLifecycleDoubles();
    let attempts = 0;
    doubles.activities.changeServerType = async () => {
      attempts += 1;
      throw ApplicationFailure.nonRetryable('change_type action failed', ErrorType.InvalidInput);
    };
    await story(doubles, testConfig(), async ({ handle, t0, signal, at }) => {
      await at(60_000);
      await signal(billingEvent('evt_2', 'subscription_updated', t0 + 120_000, { plan: 'pro' }));
      await at(5 * 3_600_000);
      const view = await handle.query(stateQuery);
      expect(view).toMatchObject({ plan: 'pro', needsAttention: true });
      expect(view.attentionReason).toMatch(/plan pro: changing the server type to cx33 failed/);
      expect(attempts).toBe(1);
      // The next billing event that names the plan (a renewal, say) gives it one more try.
      await signal(billingEvent('evt_3', 'subscription_updated', t0 + 5 * 3_600_000 + 1000, { plan: 'pro' }));
      await at(6 * 3_600_000);
    }, (t0) => billingEvent('evt_1', 'checkout_completed', t0, { accessEndsAt: iso(t0 + 30 * day), plan: 'starter' }));
    expect(attempts).toBe(2);
  });

  it('waking a hibernated server whose type is gone falls back to the plan\'s current candidates', async () => {
    const doubles = createLifecycleDoubles();
    await story(doubles, testConfig({ idle: { afterMs: day, policy: 'hibernate' } }), async ({ handle, at }) => {
      await at(day + 60_000);
      expect((await handle.query(stateQuery)).stage).toBe('idle');
      // Hetzner removed (or deprecated) cx23 while the server slept.
      doubles.options.unavailableServerTypes = ['cx23'];
      await handle.signal(userActivitySignal, { source: 'dashboard' });
      await at(day + 120_000);
      expect(await handle.query(stateQuery)).toMatchObject({ stage: 'active', needsAttention: false, server: { serverType: 'cpx12', location: 'hel1' } });
    }, (t0) => billingEvent('evt_1', 'checkout_completed', t0, { accessEndsAt: iso(t0 + 30 * day), plan: 'starter' }));
    expect(doubles.steps()).toEqual([...provisioned, 'createBackup before_hibernate', 'hibernate',
      'wakeFromSnapshot cx23@nbg1 ✗', 'wakeFromSnapshot cx23@fsn1 ✗', 'wakeFromSnapshot cpx12@hel1']);
    expect(doubles.servers.size).toBe(1);
  });

  it('a downgrade while hibernated waits for the wake (the snapshot keeps its disk), then rebuilds', async () => {
    const doubles = createLifecycleDoubles();
    await story(doubles, testConfig({ idle: { afterMs: day, policy: 'hibernate' } }), async ({ handle, t0, signal, at }) => {
      await at(day + 60_000);
      expect((await handle.query(stateQuery)).stage).toBe('idle');
      await signal(billingEvent('evt_2', 'subscription_updated', t0 + day + 90_000, { plan: 'starter' }));
      await at(day + 3_600_000);
      expect(await handle.query(stateQuery)).toMatchObject({ stage: 'idle', plan: 'starter', needsAttention: false });
      await handle.signal(userActivitySignal, { source: 'dashboard' });
      await at(day + 2 * 3_600_000);
      expect(await handle.query(stateQuery)).toMatchObject({ stage: 'active', plan: 'starter', needsAttention: false, server: { serverType: 'cx23' } });
    }, (t0) => billingEvent('evt_1', 'checkout_completed', t0, { accessEndsAt: iso(t0 + 30 * day), plan: 'pro' }));
    expect(doubles.steps().slice(4)).toEqual([
      'createBackup before_hibernate', 'hibernate', 'wakeFromSnapshot cx33@nbg1',
      'changeServerType cx23 ✗', 'changeServerType cpx12 ✗', 'createBackup before_plan_change', 'deleteServer (verified backup)', 'audit server_deleted',
      'ensureServer cx23@nbg1', 'setupAssistant', 'latestVerifiedBackup', expect.stringMatching(/^restoreBackup bak-\d+$/), 'mail server_ready',
    ]);
    expect([...doubles.servers.values()].map((s) => s.serverType)).toEqual(['cx23']);
  });

  it('periodic backups run daily at the customer\'s spread time', async () => {
    const doubles = createLifecycleDoubles();
    const handle = await story(doubles, testConfig({ dailyBackupEveryMs: day }), async ({ at }) => {
      await at(3 * day + 1000);
    }, (t0) => billingEvent('evt_1', 'checkout_completed', t0, { accessEndsAt: iso(t0 + 30 * day), plan: 'starter' }));
    const daily = doubles.calls.filter((c) => c.step === 'createBackup daily').map((c) => (c.input as { idempotencyKey: string }).idempotencyKey.split(':backup:daily:')[1]!);
    expect(daily.length).toBe(3);
    const slots = daily.map((s) => Date.parse(s));
    expect(slots[1]! - slots[0]!).toBe(day);
    expect(slots[2]! - slots[1]!).toBe(day);
    const customerId = handle.workflowId.slice(lifecycleWorkflowId('').length);
    expect(slots[0]! % day).toBe(spreadHash(customerId) % day);
  });
});

/**
 * The customer lifecycle: one durable workflow per customer, id `customer-<userId>`, from the first
 * event (registration or payment) until the data is purged. Shaped like Temporal's
 * safe-message-handlers sample: one object holds the state (lifecycle/lifecycle.ts), message
 * handlers only record facts or queue a request (lifecycle/handlers.ts), one main loop owns every
 * server operation (lifecycle/steps.ts), and continue-as-new waits until all handlers finished.
 *
 * Each pass of the loop reads the clock once and asks the pure `nextStep` (lifecycle/next-step.ts)
 * what to do: serve a queued request, enter a phase, create or wake the server, change its plan, run
 * the due deadline (deadlines.ts), or publish (lifecycle/publishing.ts) and wait with
 * `condition(changed, untilNextDeadline)`.
 */
import { allHandlersFinished, condition, continueAsNew, patched, setHandler, workflowInfo } from '@temporalio/workflow';
import type { BackupRecord } from '../activities/contracts.ts';
import { describeDeadline, resolveConfig, toIso, toMs, type LifecycleConfig } from './deadlines.ts';
import {
  applySettingsUpdate, approveDeletionWithoutBackupUpdate, backupNowUpdate, backupProgressSignal, billingEventSignal, powerOffUpdate,
  powerOnUpdate, restoreBackupUpdate, stateQuery, userActivitySignal, type LifecycleView,
} from './messages.ts';
import { failureMessage } from './lifecycle/activity-proxies.ts';
import {
  approveDeletion, onBackupProgress, onBillingEvent, onUserActivity, requireServer, updateKey, updateSettings, validateApproval,
  validatePowerOff, validateRestore, validateSettings,
} from './lifecycle/handlers.ts';
import { Lifecycle } from './lifecycle/lifecycle.ts';
import { nextStep } from './lifecycle/next-step.ts';
import { publish, upcoming, view } from './lifecycle/publishing.ts';
import { reportProcessedEvents, sendMailOnce } from './lifecycle/server.ts';
import { initialState, nextLifeDue, nextLifeState, type LifecycleState } from './lifecycle/state.ts';
import { runStep, serve } from './lifecycle/steps.ts';

export type { LifecycleState, ServerState } from './lifecycle/state.ts';

/** Input of {@link customerLifecycle}. `state` is set only by continue-as-new. */
export interface CustomerLifecycleInput {
  customerId: string;
  /** Timing overrides (tests and history recording); production uses the defaults. */
  config?: Partial<LifecycleConfig>;
  state?: LifecycleState;
}

/** The workflow id of a customer's lifecycle. */
export function lifecycleWorkflowId(customerId: string): string {
  return `customer-${customerId}`;
}

/**
 * One customer's whole life with Berth. Start it with signalWithStart (billing event or user
 * activity) on workflow id `customer-<userId>`; it completes when the customer's data is purged.
 */
export async function customerLifecycle(input: CustomerLifecycleInput): Promise<LifecycleView> {
  const { customerId } = input;
  const config = resolveConfig(input.config);
  const lc = new Lifecycle(customerId, workflowInfo().workflowId, config, input.state ?? initialState(toIso(Date.now())));

  // Signals record facts and wake the loop; updates queue a request the loop serves once their validator accepted it.
  setHandler(billingEventSignal, (event) => onBillingEvent(lc, event));
  setHandler(userActivitySignal, (activity) => onUserActivity(lc, activity));
  setHandler(backupNowUpdate, () => lc.submit<BackupRecord>({ kind: 'backup_now', key: updateKey() }), { validator: () => requireServer(lc) });
  setHandler(restoreBackupUpdate, ({ backupId }) => lc.submit<{ restoredAt: string }>({ kind: 'restore', backupId, key: updateKey() }), { validator: (args) => validateRestore(lc, args) });
  setHandler(powerOnUpdate, () => lc.submit<void>({ kind: 'power_on' }), { validator: () => requireServer(lc) });
  setHandler(powerOffUpdate, () => lc.submit<void>({ kind: 'power_off' }), { validator: () => validatePowerOff(lc) });
  setHandler(applySettingsUpdate, (settings) => updateSettings(lc, settings), { validator: (settings) => validateSettings(lc, settings) });
  setHandler(approveDeletionWithoutBackupUpdate, (approval) => approveDeletion(lc, approval), { validator: (approval) => validateApproval(lc, approval) });
  setHandler(backupProgressSignal, (progress) => onBackupProgress(lc, progress));
  setHandler(stateQuery, () => view(lc));

  if (input.state === undefined) {
    lc.note('lifecycle started');
    await sendMailOnce(lc, 'welcome', 'signup', {});
  }

  for (;;) {
    // Reset before looking at the state: anything a handler changes from here on wakes the wait below.
    lc.changed = false;
    await reportProcessedEvents(lc);
    const now = Date.now();
    const { enter, step } = nextStep(lc.state, now, { customerId, config, queued: lc.queue.length > 0, patched });
    if (step.kind === 'complete') break;
    if (step.kind === 'serve') {
      await serve(lc, lc.queue.shift()!);
      continue;
    }
    if (enter !== null) lc.enter(enter.phase, enter.why);
    if (step.kind !== 'rest' && step.kind !== 'cooling') {
      try {
        await runStep(lc, step);
      } catch (err) {
        // An unexpected activity failure: do not fail the customer's workflow; flag it and try later.
        lc.state.cooldownUntil = toIso(Date.now() + config.provisioningRetryMs);
        lc.attention(`step failed: ${failureMessage(err)}`);
      }
      continue;
    }

    // Nothing to run now: publish, then continue as new or wait for a message or the next deadline.
    if (step.kind === 'rest') lc.state.cooldownUntil = null;
    await publish(lc);
    const info = workflowInfo();
    if (info.continueAsNewSuggested || info.historyLength >= config.maxHistoryEvents) {
      await condition(() => allHandlersFinished() || lc.queue.length > 0);
      if (lc.queue.length === 0 && lc.state.unreportedEventIds.length === 0) {
        return await continueAsNew<typeof customerLifecycle>({ customerId, config: input.config, state: lc.state });
      }
      continue;
    }
    await waitForChange(lc);
  }

  await publish(lc);
  await condition(allHandlersFinished);
  if (nextLifeDue(lc.state)) {
    // Nothing that arrived during the purge is lost: it starts the customer's next life.
    return await continueAsNew<typeof customerLifecycle>({ customerId, config: input.config, state: nextLifeState(lc.state, toIso(Date.now())) });
  }
  return view(lc);
}

/**
 * Waits for a message or the next deadline (or the end of a cool-down). The clock is read after
 * publishing: a deadline that became due meanwhile (activities take time) counts, so the wait is short.
 */
async function waitForChange(lc: Lifecycle): Promise<void> {
  const now = Date.now();
  const next = upcoming(lc, now);
  const cooldownUntil = lc.state.cooldownUntil;
  const wakeAt = Math.min(next?.atMs ?? Infinity, cooldownUntil !== null ? toMs(cooldownUntil) : Infinity);
  const summary = next === null ? 'wait for a billing event or user activity' : describeDeadline(next.action);
  const woken = () => lc.changed || lc.queue.length > 0;
  if (Number.isFinite(wakeAt)) await condition(woken, Math.max(1, wakeAt - now), { summary });
  else await condition(woken);
}

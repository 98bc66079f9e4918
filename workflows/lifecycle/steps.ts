/**
 * The steps the main loop runs (next-step.ts decides which): serve an update's request, create the
 * server, wake it, change its plan, run a due deadline (reminder, backups, final backup and delete,
 * purge, idle). Each changes the phase only through `Lifecycle.enter`.
 */
import { ApplicationFailure } from '@temporalio/workflow';
import type { BackupRecord, PlanId, ServerSummary } from '../../activities/contracts.ts';
import { ErrorType } from '../../lib/errors.ts';
import { accessEndsAtMs, dataKeptUntilMs, finalBackupRetryDelayMs, nextPeriodicBackupAt, toIso, toMs, type Deadline } from '../deadlines.ts';
import { backups, cloud, failureMessage, failureType, projection } from './activity-proxies.ts';
import type { Lifecycle, Pending } from './lifecycle.ts';
import type { Step } from './next-step.ts';
import { publish } from './publishing.ts';
import { applySettings, backup, ensureRunning, goIdle, restoreLatest, sendMailOnce, wake } from './server.ts';
import { markDone, planOf, serverRunning } from './state.ts';

/** Runs one step that does work; a failure propagates to the loop, which cools down and flags it. */
export async function runStep(lc: Lifecycle, step: Exclude<Step, { kind: 'serve' | 'complete' | 'cooling' | 'rest' }>): Promise<void> {
  switch (step.kind) {
    case 'provision':
      await publish(lc);
      return provision(lc);
    case 'wake':
      return wake(lc);
    case 'change_plan':
      return step.rebuildsWhenUnfit ? changePlanFitting(lc, step.target) : changePlanAsRecorded(lc, step.target);
    case 'deadline':
      return runDeadline(lc, step.deadline);
  }
}

/** Serves an update's request; its failure is the update's answer, not the loop's. */
export async function serve(lc: Lifecycle, pending: Pending): Promise<void> {
  const { request } = pending;
  try {
    switch (request.kind) {
      case 'backup_now':
        await ensureRunning(lc);
        pending.result = await backup(lc, 'manual', request.key);
        break;
      case 'restore': {
        await ensureRunning(lc);
        await backup(lc, 'before_restore', request.key);
        const server = lc.state.server;
        if (server === null || server.power !== 'running') throw new Error('no running server');
        pending.result = await backups.restoreBackup.executeWithOptions({ summary: `restore backup ${request.backupId}` }, [{
          customerId: lc.customerId, serverId: server.summary.serverId, backupId: request.backupId,
        }]);
        lc.note(`backup ${request.backupId} restored on request`);
        break;
      }
      case 'power_on':
        await wake(lc);
        break;
      case 'power_off':
        await goIdle(lc, true);
        break;
      case 'apply_settings':
        if (serverRunning(lc.state)) await applySettings(lc);
        else lc.note('settings saved; applied when the server runs');
        break;
    }
  } catch (err) {
    pending.error = ApplicationFailure.create({ message: failureMessage(err), type: failureType(err) ?? ErrorType.Transient, nonRetryable: true });
  }
  pending.done = true;
}

/** The end of the current access period (ISO), or 'none': mails say which period they are about. */
function periodKey(lc: Lifecycle): string {
  const end = accessEndsAtMs(lc.state.billing, lc.config);
  return end === null ? 'none' : toIso(end);
}

function provisioningFailed(lc: Lifecycle, reason: string): void {
  lc.state.failures += 1;
  lc.state.retryAt = toIso(Date.now() + lc.config.provisioningRetryMs);
  lc.attention(reason);
}

/** Provisioning and restoring: a server from the plan's candidates, the assistant, the latest backup. */
async function provision(lc: Lifecycle): Promise<void> {
  const { state, config, customerId } = lc;
  const restoring = state.phase === 'restoring';
  const customerPlan = planOf(state);
  let summary: ServerSummary | null = null;
  const errors: string[] = [];
  for (const candidate of config.plans[customerPlan].candidates) {
    try {
      summary = await cloud.ensureServer.executeWithOptions({ summary: `ensure server ${candidate.serverType} in ${candidate.location}` }, [{
        customerId, labels: { 'berth-customer': customerId }, name: `berth-${customerId}`,
        serverType: candidate.serverType, location: candidate.location,
      }]);
      break;
    } catch (err) {
      const type = failureType(err);
      // Anything but capacity ends the walk (another candidate would find the same server): say what happened.
      errors.push(`${candidate.serverType}/${candidate.location}: ${type ?? 'error'}${type === ErrorType.CapacityUnavailable ? '' : ` (${failureMessage(err)})`}`);
      if (type !== ErrorType.CapacityUnavailable) break;
      lc.note(`${candidate.serverType} in ${candidate.location} unavailable, trying the next candidate`);
    }
  }
  if (summary === null) {
    provisioningFailed(lc, `provisioning failed (${errors.join('; ')})`);
    await sendMailOnce(lc, 'provisioning_trouble', periodKey(lc), { plan: customerPlan });
    return;
  }
  state.server = { power: 'running', summary, plan: customerPlan };
  lc.note(`server ${summary.serverId} (${summary.serverType}, ${summary.location}) is up`);
  let restoreWarning: string | null = null;
  try {
    await cloud.setupAssistant.executeWithOptions({ summary: 'set up the assistant' }, [{ customerId, serverId: summary.serverId, settings: state.settings }]);
    state.settingsPending = false;
    if (restoring) restoreWarning = await restoreLatest(lc, summary.serverId);
  } catch (err) {
    provisioningFailed(lc, `${restoring ? 'restoring' : 'setting up'} failed: ${failureMessage(err)}`);
    return;
  }
  lc.enter('serving', 'serverReady');
  state.retryAt = null;
  state.failures = 0;
  state.expiredAt = null;
  state.dataKeptUntil = null;
  state.lastActivityAt = toIso(Date.now());
  state.nextPeriodicBackupAt = config.dailyBackupEveryMs === null ? null : toIso(nextPeriodicBackupAt(customerId, config.dailyBackupEveryMs, Date.now()));
  lc.clearAttention();
  // Provisioning trouble is over, but skipped corrupt backups still need an operator.
  if (restoreWarning !== null) lc.attention(restoreWarning);
  await sendMailOnce(lc, 'server_ready', `${restoring ? 'restored' : 'new'}:${periodKey(lc)}`, {
    serverAddress: summary.ipv4, restored: restoring, plan: customerPlan,
  });
}

/** The plan change of workflows started before the patch: in place on each type, or blocked. */
async function changePlanAsRecorded(lc: Lifecycle, target: PlanId): Promise<void> {
  const { state, config } = lc;
  const server = state.server;
  if (server === null) return;
  if (server.power === 'hibernated') {
    const first = config.plans[target].candidates[0];
    state.server = { ...server, plan: target, serverType: first?.serverType ?? server.serverType };
    lc.note(`plan ${target}: the server wakes as ${state.server.serverType}`);
    return;
  }
  const types = [...new Set(config.plans[target].candidates.map((c) => c.serverType))];
  for (const serverType of types) {
    try {
      const summary = await cloud.changeServerType.executeWithOptions({ summary: `change server type to ${serverType}` }, [{ customerId: lc.customerId, serverId: server.summary.serverId, serverType }]);
      state.server = { power: server.power, summary, plan: target };
      lc.note(`plan ${target}: server type changed to ${serverType}`);
      return;
    } catch (err) {
      if (failureType(err) !== ErrorType.CapacityUnavailable) throw err;
    }
  }
  state.planChangeBlocked = target;
  lc.attention(`no server type of plan ${target} is available for the change`);
}

/**
 * Moves a running or stopped server to the target plan without ever bouncing it in a loop: each
 * type of the plan is tried in place (the activity refuses before stopping the server when the type
 * cannot be had or does not fit); if the only types to be had do not fit (a smaller disk), the
 * server is rebuilt on the new plan from a verified backup; any other failure stops trying this
 * plan until a billing event names it again, and asks an operator (docs/decisions/012).
 */
async function changePlanFitting(lc: Lifecycle, target: PlanId): Promise<void> {
  const { state, config } = lc;
  const server = state.server;
  if (server === null || server.power === 'hibernated') return;
  const types = [...new Set(config.plans[target].candidates.map((c) => c.serverType))];
  const unfit: string[] = [];
  for (const serverType of types) {
    try {
      const summary = await cloud.changeServerType.executeWithOptions({ summary: `change server type to ${serverType}` }, [{ customerId: lc.customerId, serverId: server.summary.serverId, serverType }]);
      // The activity powers the server on after the change.
      state.server = { power: 'running', summary, plan: target };
      state.planChangeBlocked = null;
      lc.note(`plan ${target}: server type changed to ${serverType}`);
      return;
    } catch (err) {
      const type = failureType(err);
      if (type === ErrorType.CapacityUnavailable) continue;
      if (type === ErrorType.ServerTypeUnfit) {
        unfit.push(serverType);
        continue;
      }
      state.planChangeBlocked = target;
      lc.attention(`plan ${target}: changing the server type to ${serverType} failed (${failureMessage(err)}); the server keeps ${server.summary.serverType}; tried again with the next billing event that names the plan`);
      return;
    }
  }
  if (unfit.length > 0) {
    await rebuildForPlan(lc, target, unfit);
    return;
  }
  state.planChangeBlocked = target;
  lc.attention(`no server type of plan ${target} is available for the change`);
}

/**
 * The server cannot take the plan's types in place (Hetzner never shrinks a disk): a verified
 * backup of it, then its deletion (invariant 1, docs/invariants.md), then the restoring phase
 * creates the plan's server (invariant 2: only after the old one is gone) and restores that backup.
 * A failure before the deletion leaves the server as it was; the main loop tries again after its
 * cool-down.
 */
async function rebuildForPlan(lc: Lifecycle, target: PlanId, unfit: string[]): Promise<void> {
  const { state, customerId } = lc;
  await ensureRunning(lc);
  const server = state.server;
  if (server === null || server.power !== 'running') throw ApplicationFailure.nonRetryable('server not running', ErrorType.InvalidInput);
  const serverId = server.summary.serverId;
  const verified = await backup(lc, 'before_plan_change', `${target}:${toIso(Date.now())}`);
  await cloud.deleteServer.executeWithOptions({ summary: 'delete the server (plan change rebuild)' }, [{ customerId, serverId, verifiedBackupId: verified.backupId }]);
  await projection.appendAudit({
    customerId, at: toIso(Date.now()), actor: 'workflow', action: 'server_deleted',
    details: { serverId, verifiedBackupId: verified.backupId, reason: `plan ${target}: ${unfit.join(', ')} cannot take this server's disk in place` },
  });
  lc.note(`plan ${target}: ${unfit.join(', ')} cannot take server ${serverId} in place; deleted after verified backup ${verified.backupId}, rebuilding on the new plan`);
  state.server = null;
  lc.enter('restoring', 'rebuildForPlan');
  state.retryAt = null;
  state.failures = 0;
  state.planChangeBlocked = null;
}

/** Runs the deadline the schedule says is due. */
async function runDeadline(lc: Lifecycle, deadline: Deadline): Promise<void> {
  const { state } = lc;
  const action = deadline.action;
  switch (action.kind) {
    case 'reminder':
      markDone(state.remindersDone, action.periodEnd, action.daysLeft);
      await sendMailOnce(lc, 'access_ending', `${action.daysLeft}d:${action.periodEnd}`, {
        daysLeft: action.daysLeft, accessEndsAt: action.periodEnd,
        reason: state.billing.paymentFailedAt !== null ? 'payment_failing' : 'canceled', plan: state.billing.plan ?? undefined,
      });
      return;
    case 'expiry_backup':
      markDone(state.expiryBackupsDone, action.periodEnd, action.daysLeft);
      try {
        await ensureRunning(lc);
        await backup(lc, 'expiry', `${action.daysLeft}d:${action.periodEnd}`);
      } catch (err) {
        lc.attention(`backup ${action.daysLeft} day(s) before expiry failed: ${failureMessage(err)}`);
      }
      return;
    case 'final_backup_and_delete':
      return finalBackupAndDelete(lc, action.periodEnd);
    case 'retry_provisioning':
      state.retryAt = null;
      return;
    case 'purge':
      lc.enter('purged', 'retentionOver');
      await projection.appendAudit({ customerId: lc.customerId, at: toIso(Date.now()), actor: 'workflow', action: 'customer_purged' });
      return;
    case 'go_idle':
      return goIdle(lc, false);
    case 'periodic_backup':
      state.nextPeriodicBackupAt = toIso(nextPeriodicBackupAt(lc.customerId, lc.config.dailyBackupEveryMs ?? lc.config.dayMs, Date.now()));
      try {
        await backup(lc, 'daily', toIso(deadline.atMs));
      } catch (err) {
        lc.note(`periodic backup failed: ${failureMessage(err)}`);
      }
      return;
  }
}

/** Access ended: the verified final backup, then the server's deletion (invariant 1, docs/invariants.md), the expired mail. */
async function finalBackupAndDelete(lc: Lifecycle, periodEnd: string): Promise<void> {
  const { state, config, customerId } = lc;
  const override = state.deletionOverride;
  let verified: BackupRecord | null = null;
  if (override === null) {
    try {
      await ensureRunning(lc);
      verified = await backup(lc, 'final', periodEnd);
    } catch (err) {
      // Invariant 1 (docs/invariants.md): no verified backup, no delete. Keep the server and try again later.
      state.failures += 1;
      const delay = finalBackupRetryDelayMs(state.failures, config);
      state.retryAt = toIso(Date.now() + delay);
      lc.attention(`final backup failed ${state.failures} time(s) (${failureMessage(err)}); server kept, next try at ${state.retryAt}`);
      return;
    }
  }
  const server = state.server;
  if (server !== null) {
    if (server.power === 'hibernated') {
      // Only reachable with an operator override: the snapshot is the server's data; waking is not attempted.
      lc.note(`hibernation snapshot ${server.snapshotId} left for the operator to remove`);
    } else {
      const serverId = server.summary.serverId;
      await cloud.deleteServer.executeWithOptions({ summary: 'delete the server' }, [verified !== null
        ? { customerId, serverId, verifiedBackupId: verified.backupId }
        : { customerId, serverId, override: override! }]);
      await projection.appendAudit({
        customerId, at: toIso(Date.now()), actor: override ? `operator:${override.approvedBy}` : 'workflow', action: 'server_deleted',
        ...(override ? { reason: override.reason } : {}),
        details: { serverId, verifiedBackupId: verified?.backupId ?? null },
      });
      lc.note(`server ${serverId} deleted${verified ? ` after verified backup ${verified.backupId}` : ' with operator override'}`);
    }
  }
  state.server = null;
  lc.enter('expired', 'accessEnded');
  state.expiredAt = toIso(Date.now());
  // Retention counts from the end of access, not from when the (maybe retried) delete happened.
  state.dataKeptUntil = toIso(dataKeptUntilMs(toMs(periodEnd), state.billing.plan, config));
  state.retryAt = null;
  state.failures = 0;
  state.deletionOverride = null;
  state.nextPeriodicBackupAt = null;
  lc.clearAttention();
  await sendMailOnce(lc, 'expired', periodEnd, { accessEndsAt: periodEnd, dataKeptUntil: state.dataKeptUntil, plan: state.billing.plan ?? undefined });
}

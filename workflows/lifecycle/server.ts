/**
 * The lifecycle's building blocks on the customer's server and mail: verified backups, waking and
 * stopping, settings, restoring, mails sent once, billing events marked processed. The steps
 * (steps.ts) compose these; only the main loop runs them, so two never race.
 */
import { ApplicationFailure, log, patched } from '@temporalio/workflow';
import type { BackupReason, BackupRecord, MailData, MailKind, ServerSummary } from '../../activities/contracts.ts';
import { ErrorType } from '../../lib/errors.ts';
import { nextPeriodicBackupAt, toIso } from '../deadlines.ts';
import { backups, billing, cloud, failureMessage, failureType, mail } from './activity-proxies.ts';
import type { Lifecycle } from './lifecycle.ts';
import { bounds, lifecyclePatches, pushBounded, type ServerState } from './state.ts';

/** Sends a mail once per idempotency key (invariant 3, docs/invariants.md); a failure is noted, not fatal. */
export async function sendMailOnce(lc: Lifecycle, kind: MailKind, occasion: string, data: MailData): Promise<void> {
  const idempotencyKey = `${lc.workflowId}:${kind}:${occasion}`;
  if (lc.state.sentMailKeys.includes(idempotencyKey)) return;
  try {
    await mail.sendMail.executeWithOptions({ summary: `mail ${kind}` }, [{ customerId: lc.customerId, kind, idempotencyKey, data }]);
    pushBounded(lc.state.sentMailKeys, idempotencyKey, bounds.sentMailKeys);
    lc.note(`mail sent: ${kind}${data.daysLeft ? ` (${data.daysLeft} days)` : ''}`);
  } catch (err) {
    lc.note(`mail ${kind} failed: ${failureMessage(err)}`);
  }
}

/** Tells billing which events took effect (or were ignored); a failure is logged and not retried here. */
export async function reportProcessedEvents(lc: Lifecycle): Promise<void> {
  if (lc.state.unreportedEventIds.length === 0) return;
  const eventIds = lc.state.unreportedEventIds.splice(0);
  try {
    await billing.markEventsProcessed({ customerId: lc.customerId, eventIds, processedAt: toIso(Date.now()) });
  } catch (err) {
    log.warn('marking billing events processed failed', { customerId: lc.customerId, error: failureMessage(err) });
  }
}

/** A verified backup of the running server; its progress shows in the state query while it runs. */
export async function backup(lc: Lifecycle, reason: BackupReason, occasion: string): Promise<BackupRecord> {
  const server = lc.state.server;
  if (server === null || server.power !== 'running') throw ApplicationFailure.nonRetryable('server not running', ErrorType.InvalidInput);
  const idempotencyKey = `${lc.workflowId}:backup:${reason}:${occasion}`;
  lc.backupInProgress = { idempotencyKey, reason, startedAt: toIso(Date.now()), phase: null, bytesDone: 0, bytesEstimate: null, reportedAt: null };
  let record: BackupRecord;
  try {
    record = await backups.createBackup.executeWithOptions({ summary: `${reason} backup (verified)` }, [{
      customerId: lc.customerId, serverId: server.summary.serverId, reason, idempotencyKey,
    }]);
  } finally {
    lc.backupInProgress = null;
  }
  pushBounded(lc.state.recentBackups, record, bounds.recentBackups);
  lc.note(`backup ${record.backupId} verified (${record.reason})`);
  return record;
}

/** Makes sure the server runs (for a backup); does not count as user activity. */
export async function ensureRunning(lc: Lifecycle): Promise<void> {
  const { state, customerId } = lc;
  const server = state.server;
  if (server === null || server.power === 'running') return;
  if (server.power === 'hibernated') {
    const summary = patched(lifecyclePatches.wakeFallback) ? await wakeOnAnyCandidate(lc, server)
      : await cloud.wakeFromSnapshot.executeWithOptions({ summary: 'wake from hibernation snapshot' }, [{
        customerId, snapshotId: server.snapshotId, serverType: server.serverType, location: server.location,
      }]);
    state.server = { power: 'running', summary, plan: server.plan };
    lc.note(`server ${summary.serverId} woken from snapshot ${server.snapshotId}`);
  } else {
    await cloud.powerOn.executeWithOptions({ summary: 'power on' }, [{ customerId, serverId: server.summary.serverId }]);
    state.server = { ...server, power: 'running' };
    lc.note('server powered on');
  }
  if (state.settingsPending) await applySettings(lc);
}

/**
 * Wakes a hibernated server on the type and location it had, else on its plan's current candidates:
 * a type Hetzner removed, deprecated or cannot give now (CapacityUnavailable), or one too small for
 * the snapshot (ServerTypeUnfit), is passed over. Throws CapacityUnavailable when none can be had.
 */
async function wakeOnAnyCandidate(lc: Lifecycle, server: Extract<ServerState, { power: 'hibernated' }>): Promise<ServerSummary> {
  const candidates = [{ serverType: server.serverType, location: server.location }, ...lc.config.plans[server.plan].candidates]
    .filter((c, i, all) => all.findIndex((o) => o.serverType === c.serverType && o.location === c.location) === i);
  const passedOver: string[] = [];
  for (const candidate of candidates) {
    try {
      return await cloud.wakeFromSnapshot.executeWithOptions({ summary: `wake from hibernation snapshot as ${candidate.serverType} in ${candidate.location}` }, [{
        customerId: lc.customerId, snapshotId: server.snapshotId, ...candidate,
      }]);
    } catch (err) {
      const type = failureType(err);
      if (type !== ErrorType.CapacityUnavailable && type !== ErrorType.ServerTypeUnfit) throw err;
      passedOver.push(`${candidate.serverType}/${candidate.location}: ${type}`);
      lc.note(`waking: ${candidate.serverType} in ${candidate.location} cannot be had (${type}), trying the next candidate`);
    }
  }
  throw ApplicationFailure.nonRetryable(`no server type can take hibernation snapshot ${server.snapshotId} now (${passedOver.join('; ')})`, ErrorType.CapacityUnavailable);
}

/** Applies the saved assistant settings on the running server. */
export async function applySettings(lc: Lifecycle): Promise<void> {
  const server = lc.state.server;
  if (server === null || server.power !== 'running') return;
  await cloud.applySettings.executeWithOptions({ summary: 'apply assistant settings' }, [{ customerId: lc.customerId, serverId: server.summary.serverId, settings: lc.state.settings }]);
  lc.state.settingsPending = false;
  lc.note('settings applied');
}

/** The customer is back: the server runs, the idle clock and the periodic backups start over. */
export async function wake(lc: Lifecycle): Promise<void> {
  const { state, config } = lc;
  state.wakeRequested = false;
  await ensureRunning(lc);
  state.lastActivityAt = toIso(Date.now());
  if (config.dailyBackupEveryMs !== null) {
    state.nextPeriodicBackupAt = toIso(nextPeriodicBackupAt(lc.customerId, config.dailyBackupEveryMs, Date.now()));
  }
}

/** Stops the server (the customer's power-off, or idle with the stop policy) or hibernates it (idle, hibernate policy). */
export async function goIdle(lc: Lifecycle, manual: boolean): Promise<void> {
  const { state, customerId } = lc;
  const server = state.server;
  if (server === null || server.power !== 'running') return;
  const serverId = server.summary.serverId;
  if (!manual && lc.config.idle.policy === 'hibernate') {
    // Hibernation deletes the server: like expiry, only after a verified backup of it (invariant 1, docs/invariants.md).
    const verified = await backup(lc, 'before_hibernate', state.lastActivityAt);
    const { snapshotId } = await cloud.hibernate.executeWithOptions({ summary: 'hibernate (snapshot + delete)' }, [{ customerId, serverId, verifiedBackupId: verified.backupId }]);
    state.server = { power: 'hibernated', snapshotId, serverType: server.summary.serverType, location: server.summary.location, plan: server.plan };
    lc.note(`idle: server ${serverId} hibernated as snapshot ${snapshotId}`);
  } else {
    await cloud.powerOff.executeWithOptions({ summary: manual ? 'power off (customer)' : 'power off (idle)' }, [{ customerId, serverId }]);
    state.server = { ...server, power: 'stopped' };
    lc.note(manual ? 'server powered off by the customer' : `idle: server ${serverId} stopped`);
  }
}

/**
 * Restores the newest verified backup; a corrupt one is skipped for the one before it.
 * Returns what needs an operator's attention (skipped backups), or null.
 */
export async function restoreLatest(lc: Lifecycle, serverId: string): Promise<string | null> {
  const { customerId } = lc;
  const skipped: string[] = [];
  for (;;) {
    const latest = await backups.latestVerifiedBackup.executeWithOptions({ summary: 'find the latest verified backup' }, [{ customerId, excludingBackupIds: skipped }]);
    if (latest === null) {
      lc.note(skipped.length === 0 ? 'no backup to restore: starting fresh' : 'no usable backup left: starting fresh');
      return skipped.length > 0 ? `backups ${skipped.join(', ')} failed verification on restore; started fresh` : null;
    }
    try {
      await backups.restoreBackup.executeWithOptions({ summary: `restore backup ${latest.backupId}` }, [{ customerId, serverId, backupId: latest.backupId }]);
      lc.note(`backup ${latest.backupId} restored`);
      return skipped.length > 0 ? `backups ${skipped.join(', ')} failed verification; restored ${latest.backupId}` : null;
    } catch (err) {
      if (failureType(err) !== ErrorType.BackupCorrupt) throw err;
      skipped.push(latest.backupId);
      lc.note(`backup ${latest.backupId} is corrupt, falling back to the previous one`);
    }
  }
}

/**
 * What the lifecycle's messages do. Signals record facts and wake the main loop; updates queue a
 * request that the loop serves (it owns the server) after their validators accepted it.
 */
import { currentUpdateInfo, patched } from '@temporalio/workflow';
import type { AssistantSettings, BackupProgressReport } from '../../activities/contracts.ts';
import { factsFromSummary, recordBillingEvent } from '../billing-facts.ts';
import { accessEndsAtMs, applyBillingEvent, deriveStage, toIso, toMs, willRenew } from '../deadlines.ts';
import type { ApproveDeletionInput, BillingEvent, UserActivity } from '../messages.ts';
import { projection } from './activity-proxies.ts';
import type { Lifecycle } from './lifecycle.ts';
import { bounds, lifecyclePatches, pushBounded, serverRunning } from './state.ts';

/** Billing event signal: duplicates are dropped, each fact is ordered on its own; after the purge it starts the next life. */
export function onBillingEvent(lc: Lifecycle, event: BillingEvent): void {
  const { state } = lc;
  if (state.seenEventIds.includes(event.eventId)) {
    lc.note(`ignored duplicate billing event ${event.eventId}`);
    return;
  }
  pushBounded(state.seenEventIds, event.eventId, bounds.seenEventIds);
  lc.changed = true;
  if (state.phase === 'purged' && patched(lifecyclePatches.nextLife)) {
    // This run ends with the purge; the event takes effect in the next life, and is marked there.
    (state.nextLifeEventIds ??= []).push(event.eventId);
    recordBilling(lc, event);
    return;
  }
  state.unreportedEventIds.push(event.eventId);
  if (patched(lifecyclePatches.billingFacts)) {
    recordBilling(lc, event);
    return;
  }
  if (state.lastEventCreated !== null && toMs(event.created) < toMs(state.lastEventCreated)) {
    lc.note(`ignored stale billing event ${event.eventId} (${event.type})`);
    return;
  }
  state.lastEventCreated = event.created;
  applyBillingEvent(state.billing, event);
  releaseBlockedPlanChange(lc, event);
  lc.note(`billing: ${event.type} (${event.eventId})`);
}

/** Merges a billing event fact by fact (billing-facts.ts) and says in the timeline what it did. */
function recordBilling(lc: Lifecycle, event: BillingEvent): void {
  const { state } = lc;
  // A state kept before facts existed: its values count as said by the newest event it applied.
  if (state.billing.facts === undefined && state.lastEventCreated !== null) state.billing.facts = factsFromSummary(state.billing, state.lastEventCreated);
  const { applied, stale } = recordBillingEvent(state.billing, event);
  if (state.lastEventCreated === null || toMs(event.created) > toMs(state.lastEventCreated)) state.lastEventCreated = event.created;
  if (applied.length === 0) {
    lc.note(`ignored stale billing event ${event.eventId} (${event.type})`);
    return;
  }
  releaseBlockedPlanChange(lc, event);
  const unpaid = event.type === 'checkout_completed' && event.paid === false ? ', not paid yet' : '';
  lc.note(`billing: ${event.type}${event.subscriptionStatus ? ` ${event.subscriptionStatus}` : ''} (${event.eventId}${unpaid})${stale.length > 0 ? `; newer ${stale.join(', ')} kept` : ''}`);
}

/** A blocked plan change gets one more try with each billing event that names the plan (at most a few a month). */
function releaseBlockedPlanChange(lc: Lifecycle, event: BillingEvent): void {
  if (event.plan !== undefined && lc.state.planChangeBlocked !== null && patched(lifecyclePatches.planChange)) lc.state.planChangeBlocked = null;
}

/** User activity signal: resets the idle clock and wakes an idle server; after the purge, starts the next life. */
export function onUserActivity(lc: Lifecycle, activity: UserActivity): void {
  const { state } = lc;
  if (state.phase === 'purged' && patched(lifecyclePatches.nextLife)) {
    state.nextLifeRequested = true;
    lc.changed = true;
    return;
  }
  state.lastActivityAt = toIso(Date.now());
  if (state.server !== null && !serverRunning(state)) {
    state.wakeRequested = true;
    lc.note(`user activity${activity.source ? ` (${activity.source})` : ''}: waking the server`);
  }
  lc.changed = true;
}

/** Backup progress signal: only shown in the state query, so it neither wakes the loop nor adds a timeline line. */
export function onBackupProgress(lc: Lifecycle, progress: BackupProgressReport): void {
  const current = lc.backupInProgress;
  if (current === null || progress.idempotencyKey !== current.idempotencyKey) return;
  // Reports are sent without waiting for each other, so they may arrive out of order.
  if (current.reportedAt !== null && toMs(progress.at) < toMs(current.reportedAt)) return;
  lc.backupInProgress = { ...current, phase: progress.phase, bytesDone: progress.bytesDone, bytesEstimate: progress.bytesEstimate, reportedAt: progress.at };
}

/** The idempotency key of a request: the update's id. */
export function updateKey(): string {
  return currentUpdateInfo()?.id ?? toIso(Date.now());
}

/** Validator: server commands need a server (serving, stopped or running or hibernated). */
export function requireServer(lc: Lifecycle): void {
  const { state } = lc;
  if (state.phase !== 'serving' || state.server === null) {
    const stage = deriveStage(state.phase, state.billing, lc.config, Date.now(), serverRunning(state));
    throw new Error(`the customer has no server now (stage ${stage})`);
  }
}

export function validateRestore(lc: Lifecycle, { backupId }: { backupId: string }): void {
  requireServer(lc);
  if (typeof backupId !== 'string' || backupId.trim() === '') throw new Error('backupId is required');
}

export function validatePowerOff(lc: Lifecycle): void {
  requireServer(lc);
  if (!serverRunning(lc.state)) throw new Error('the server is not running');
}

/** Settings update: saved at once, applied by the loop when the server runs. */
export function updateSettings(lc: Lifecycle, settings: AssistantSettings): Promise<void> {
  lc.state.settings = { ...lc.state.settings, ...settings };
  lc.state.settingsPending = true;
  return lc.submit<void>({ kind: 'apply_settings' });
}

const allowedSettings = ['model', 'apiKeySecretId', 'timeZone'];

export function validateSettings(lc: Lifecycle, settings: AssistantSettings): void {
  if (lc.state.phase === 'purged') throw new Error('the customer is purged');
  const unknown = Object.keys(settings ?? {}).filter((k) => !allowedSettings.includes(k));
  // Secrets never enter workflow history: only the id of an encrypted secret is accepted.
  if (unknown.length > 0) throw new Error(`unknown settings: ${unknown.join(', ')} (allowed: ${allowedSettings.join(', ')})`);
}

/** Operator update: allows deleting the server without a final backup; audited before it takes effect. */
export async function approveDeletion(lc: Lifecycle, { approvedBy, reason }: ApproveDeletionInput): Promise<void> {
  const { state } = lc;
  const approvedAt = toIso(Date.now());
  await projection.appendAudit({
    customerId: lc.customerId, at: approvedAt, actor: `operator:${approvedBy}`, action: 'approve_deletion_without_backup', reason,
    details: { serverId: state.server?.power === 'hibernated' ? null : state.server?.summary.serverId ?? null },
  });
  state.deletionOverride = { approvedBy, reason, approvedAt };
  lc.note(`operator ${approvedBy} approved deletion without a final backup`);
  lc.changed = true;
}

export function validateApproval(lc: Lifecycle, { approvedBy, reason }: ApproveDeletionInput): void {
  const { state } = lc;
  if (typeof approvedBy !== 'string' || approvedBy.trim() === '') throw new Error('approvedBy is required');
  if (typeof reason !== 'string' || reason.trim().length < 20) throw new Error('a written reason of at least 20 characters is required');
  const end = accessEndsAtMs(state.billing, lc.config);
  const finalPending = state.phase === 'serving' && end !== null && !willRenew(state.billing) && Date.now() >= end;
  if (!finalPending || !state.needsAttention) throw new Error('only allowed while the final backup of an expired subscription is failing');
}

/**
 * The customer lifecycle: one durable workflow per customer, id `customer-<userId>`, from the first
 * event (registration or payment) until the data is purged. Shaped like Temporal's
 * safe-message-handlers sample: one state object, message handlers that only record intent (or
 * queue a request the main loop serves), one main loop that owns every server operation, and
 * continue-as-new after all handlers finished.
 *
 * The main loop repeats: serve queued requests → move between phases → run the one due deadline →
 * publish (search attributes, current details, projection) → wait with
 * `condition(changed, untilNextDeadline)`. Timing decisions are pure functions in deadlines.ts.
 */
import {
  ActivityFailure,
  ApplicationFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  currentUpdateInfo,
  log,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { SearchAttributeUpdatePair } from '@temporalio/common';
import type {
  AssistantSettings,
  BackupReason,
  BackupRecord,
  BackupActivities,
  BillingActivities,
  CloudActivities,
  DeletionOverride,
  LifecycleProjection,
  MailActivities,
  MailData,
  MailKind,
  PlanId,
  ProjectionActivities,
  ServerSummary,
} from '../activities/contracts.ts';
import { ErrorType, nonRetryableErrorTypes } from '../lib/errors.ts';
import { factsFromSummary, recordBillingEvent } from './billing-facts.ts';
import {
  accessEndsAtMs,
  dataKeptUntilMs,
  deriveStage,
  describeDeadline,
  dueDeadline,
  finalBackupRetryDelayMs,
  hasAccess,
  initialBillingState,
  nextDeadline,
  nextPeriodicBackupAt,
  resolveConfig,
  toIso,
  toMs,
  willRenew,
  applyBillingEvent,
  type BillingState,
  type Deadline,
  type LifecycleConfig,
  type Phase,
  type ScheduleInput,
} from './deadlines.ts';
import {
  applySettingsUpdate,
  approveDeletionWithoutBackupUpdate,
  backupNowUpdate,
  backupProgressSignal,
  billingEventSignal,
  powerOffUpdate,
  powerOnUpdate,
  restoreBackupUpdate,
  stateQuery,
  userActivitySignal,
  type BackupInProgress,
  type BillingEvent,
  type LifecycleView,
  type Stage,
  type TimelineEntry,
} from './messages.ts';
import { CustomerIdKey, NeedsAttentionKey, PlanKey, ServerIdKey, StageKey } from './search-attributes.ts';

/** The customer's server as the workflow tracks it. */
export type ServerState =
  | { power: 'running' | 'stopped'; summary: ServerSummary; plan: PlanId }
  | { power: 'hibernated'; snapshotId: string; serverType: string; location: string; plan: PlanId };

/** Everything carried across continue-as-new. Plain JSON. */
export interface LifecycleState {
  phase: Phase;
  billing: BillingState;
  lastEventCreated: string | null;
  /** Recent billing event ids (bounded), to drop duplicates. */
  seenEventIds: string[];
  /** Applied or ignored event ids not yet reported to billing as processed. */
  unreportedEventIds: string[];
  server: ServerState | null;
  settings: AssistantSettings;
  settingsPending: boolean;
  lastActivityAt: string;
  wakeRequested: boolean;
  remindersDone: Record<string, number[]>;
  expiryBackupsDone: Record<string, number[]>;
  nextPeriodicBackupAt: string | null;
  /** Next attempt of a failed final backup or provisioning. */
  retryAt: string | null;
  failures: number;
  /** After an unexpected activity failure: no deadline runs before this time. */
  cooldownUntil: string | null;
  needsAttention: boolean;
  attentionReason: string | null;
  deletionOverride: DeletionOverride | null;
  /** Plan whose server type change failed on every candidate; not retried until the plan changes. */
  planChangeBlocked: PlanId | null;
  expiredAt: string | null;
  dataKeptUntil: string | null;
  /** Idempotency keys of mails already sent (bounded). */
  sentMailKeys: string[];
  recentBackups: BackupRecord[];
  timeline: TimelineEntry[];
  lastProjectionJson: string | null;
  /**
   * Billing events that arrived after the customer was purged: the next life starts with them, and
   * they are marked processed there, once they took effect. Absent in states kept before.
   */
  nextLifeEventIds?: string[];
  /** The customer came back (user activity) after the purge: a next life starts. */
  nextLifeRequested?: boolean;
}

/**
 * Patch ids (patched()): histories recorded before a change keep replaying the old path.
 * - billing facts: each fact of a billing event is ordered on its own (billing-facts.ts), and
 *   access starts only on money; before, a whole event older than the newest one was dropped.
 * - next life: messages that arrive after the purge start the customer's next life instead of being
 *   absorbed by a run about to complete.
 */
export const lifecyclePatches = { billingFacts: 'billing-facts-ordered-one-by-one', nextLife: 'messages-after-purge-start-next-life' } as const;

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

/** Patch ids (workflow `patched()`): histories recorded before each change replay the old path. */
const planChangePatch = 'plan-change-fits-or-rebuilds';
const wakeFallbackPatch = 'wake-falls-back-over-candidates';

const bounds = { seenEventIds: 500, sentMailKeys: 200, recentBackups: 10, timeline: 30, periods: 6 };

const retryCommon = { initialInterval: '5s', backoffCoefficient: 2, maximumInterval: '5m' } as const;
const cloud = proxyActivities<CloudActivities>({
  startToCloseTimeout: '30m',
  heartbeatTimeout: '2m',
  // CapacityUnavailable is not retried here: the workflow falls back to the next candidate instead.
  retry: { ...retryCommon, maximumAttempts: 5, nonRetryableErrorTypes: [...nonRetryableErrorTypes, ErrorType.CapacityUnavailable] },
});
const backups = proxyActivities<BackupActivities>({
  startToCloseTimeout: '4h',
  heartbeatTimeout: '2m',
  retry: { ...retryCommon, initialInterval: '30s', maximumAttempts: 3, nonRetryableErrorTypes: [...nonRetryableErrorTypes] },
});
const mail = proxyActivities<MailActivities>({
  startToCloseTimeout: '1m',
  retry: { ...retryCommon, maximumAttempts: 10, nonRetryableErrorTypes: [...nonRetryableErrorTypes] },
});
const billingActs = proxyActivities<BillingActivities>({
  startToCloseTimeout: '1m',
  retry: { ...retryCommon, maximumAttempts: 10 },
});
const projection = proxyActivities<ProjectionActivities>({
  startToCloseTimeout: '1m',
  retry: { ...retryCommon, maximumAttempts: 10 },
});

/** Requests from updates, served one at a time by the main loop (it owns the server). */
type Request =
  | { kind: 'backup_now'; key: string }
  | { kind: 'restore'; backupId: string; key: string }
  | { kind: 'power_on' }
  | { kind: 'power_off' }
  | { kind: 'apply_settings' };

interface Pending {
  request: Request;
  done: boolean;
  result?: unknown;
  error?: ApplicationFailure;
}

function initialState(nowIso: string): LifecycleState {
  return {
    phase: 'awaiting_payment',
    billing: { ...initialBillingState },
    lastEventCreated: null,
    seenEventIds: [],
    unreportedEventIds: [],
    server: null,
    settings: {},
    settingsPending: false,
    lastActivityAt: nowIso,
    wakeRequested: false,
    remindersDone: {},
    expiryBackupsDone: {},
    nextPeriodicBackupAt: null,
    retryAt: null,
    failures: 0,
    cooldownUntil: null,
    needsAttention: false,
    attentionReason: null,
    deletionOverride: null,
    planChangeBlocked: null,
    expiredAt: null,
    dataKeptUntil: null,
    sentMailKeys: [],
    recentBackups: [],
    timeline: [],
    lastProjectionJson: null,
  };
}

/** The failure type (lib/errors.ts ErrorType) of an activity failure, if it has one. */
function failureType(err: unknown): string | undefined {
  if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure) return err.cause.type ?? undefined;
  if (err instanceof ApplicationFailure) return err.type ?? undefined;
  return undefined;
}

function failureMessage(err: unknown): string {
  if (err instanceof ActivityFailure && err.cause) return `${err.activityType}: ${err.cause.message}`;
  return err instanceof Error ? err.message : String(err);
}

/**
 * One customer's whole life with Berth. Start it with signalWithStart (billing event or user
 * activity) on workflow id `customer-<userId>`; it completes when the customer's data is purged.
 */
export async function customerLifecycle(input: CustomerLifecycleInput): Promise<LifecycleView> {
  const { customerId } = input;
  const config = resolveConfig(input.config);
  const workflowId = workflowInfo().workflowId;
  const state: LifecycleState = input.state ?? initialState(toIso(Date.now()));
  const queue: Pending[] = [];
  let changed = false;
  // Not carried across continue-as-new: that happens only while no backup runs.
  let backupInProgress: BackupInProgress | null = null;

  const note = (what: string): void => {
    state.timeline.push({ at: toIso(Date.now()), what });
    if (state.timeline.length > bounds.timeline) state.timeline.splice(0, state.timeline.length - bounds.timeline);
    log.info(what, { customerId });
  };
  const attention = (reason: string): void => {
    state.needsAttention = true;
    state.attentionReason = reason;
    note(`needs attention: ${reason}`);
  };
  const clearAttention = (): void => {
    if (state.needsAttention) note('attention cleared');
    state.needsAttention = false;
    state.attentionReason = null;
  };
  const plan = (): PlanId => state.billing.plan ?? 'starter';
  const running = (): boolean => state.server?.power === 'running';
  const periodKey = (): string => {
    const end = accessEndsAtMs(state.billing, config);
    return end === null ? 'none' : toIso(end);
  };

  // ---- message handlers --------------------------------------------------------------------

  setHandler(billingEventSignal, (event: BillingEvent) => {
    if (state.seenEventIds.includes(event.eventId)) {
      note(`ignored duplicate billing event ${event.eventId}`);
      return;
    }
    state.seenEventIds.push(event.eventId);
    if (state.seenEventIds.length > bounds.seenEventIds) state.seenEventIds.shift();
    changed = true;
    if (state.phase === 'purged' && patched(lifecyclePatches.nextLife)) {
      // This run ends with the purge; the event takes effect in the next life, and is marked there.
      (state.nextLifeEventIds ??= []).push(event.eventId);
      recordBilling(event);
      return;
    }
    state.unreportedEventIds.push(event.eventId);
    if (patched(lifecyclePatches.billingFacts)) {
      recordBilling(event);
      return;
    }
    if (state.lastEventCreated !== null && toMs(event.created) < toMs(state.lastEventCreated)) {
      note(`ignored stale billing event ${event.eventId} (${event.type})`);
      return;
    }
    state.lastEventCreated = event.created;
    applyBillingEvent(state.billing, event);
    // A blocked plan change gets one more try with each billing event that names the plan (at most a few a month).
    if (event.plan !== undefined && state.planChangeBlocked !== null && patched(planChangePatch)) state.planChangeBlocked = null;
    note(`billing: ${event.type} (${event.eventId})`);
  });

  /** Merges a billing event fact by fact (billing-facts.ts) and says in the timeline what it did. */
  function recordBilling(event: BillingEvent): void {
    // A state kept before facts existed: its values count as said by the newest event it applied.
    if (state.billing.facts === undefined && state.lastEventCreated !== null) state.billing.facts = factsFromSummary(state.billing, state.lastEventCreated);
    const { applied, stale } = recordBillingEvent(state.billing, event);
    if (state.lastEventCreated === null || toMs(event.created) > toMs(state.lastEventCreated)) state.lastEventCreated = event.created;
    if (applied.length === 0) {
      note(`ignored stale billing event ${event.eventId} (${event.type})`);
      return;
    }
    const unpaid = event.type === 'checkout_completed' && event.paid === false ? ', not paid yet' : '';
    note(`billing: ${event.type}${event.subscriptionStatus ? ` ${event.subscriptionStatus}` : ''} (${event.eventId}${unpaid})${stale.length > 0 ? `; newer ${stale.join(', ')} kept` : ''}`);
  }

  setHandler(userActivitySignal, (activity) => {
    if (state.phase === 'purged' && patched(lifecyclePatches.nextLife)) {
      state.nextLifeRequested = true;
      changed = true;
      return;
    }
    state.lastActivityAt = toIso(Date.now());
    if (state.server !== null && !running()) {
      state.wakeRequested = true;
      note(`user activity${activity.source ? ` (${activity.source})` : ''}: waking the server`);
    }
    changed = true;
  });

  const submit = async <T>(request: Request): Promise<T> => {
    const pending: Pending = { request, done: false };
    queue.push(pending);
    await condition(() => pending.done);
    if (pending.error) throw pending.error;
    return pending.result as T;
  };
  const requireServer = (): void => {
    if (state.phase !== 'serving' || state.server === null) {
      throw new Error(`the customer has no server now (stage ${currentStage()})`);
    }
  };
  const updateKey = (): string => currentUpdateInfo()?.id ?? toIso(Date.now());

  setHandler(backupNowUpdate, () => submit<BackupRecord>({ kind: 'backup_now', key: updateKey() }), { validator: requireServer });
  setHandler(restoreBackupUpdate, ({ backupId }) => submit<{ restoredAt: string }>({ kind: 'restore', backupId, key: updateKey() }), {
    validator: ({ backupId }) => {
      requireServer();
      if (typeof backupId !== 'string' || backupId.trim() === '') throw new Error('backupId is required');
    },
  });
  setHandler(powerOnUpdate, () => submit<void>({ kind: 'power_on' }), { validator: requireServer });
  setHandler(powerOffUpdate, () => submit<void>({ kind: 'power_off' }), {
    validator: () => {
      requireServer();
      if (!running()) throw new Error('the server is not running');
    },
  });
  setHandler(applySettingsUpdate, (settings) => {
    state.settings = { ...state.settings, ...settings };
    state.settingsPending = true;
    return submit<void>({ kind: 'apply_settings' });
  }, {
    validator: (settings) => {
      if (state.phase === 'purged') throw new Error('the customer is purged');
      const allowed = ['model', 'apiKeySecretId', 'timeZone'];
      const unknown = Object.keys(settings ?? {}).filter((k) => !allowed.includes(k));
      // Secrets never enter workflow history: only the id of an encrypted secret is accepted.
      if (unknown.length > 0) throw new Error(`unknown settings: ${unknown.join(', ')} (allowed: ${allowed.join(', ')})`);
    },
  });
  setHandler(approveDeletionWithoutBackupUpdate, async ({ approvedBy, reason }) => {
    const approvedAt = toIso(Date.now());
    // The audit entry is written before the approval takes effect.
    await projection.appendAudit({
      customerId, at: approvedAt, actor: `operator:${approvedBy}`, action: 'approve_deletion_without_backup', reason,
      details: { serverId: state.server?.power === 'hibernated' ? null : state.server?.summary.serverId ?? null },
    });
    state.deletionOverride = { approvedBy, reason, approvedAt };
    note(`operator ${approvedBy} approved deletion without a final backup`);
    changed = true;
  }, {
    validator: ({ approvedBy, reason }) => {
      if (typeof approvedBy !== 'string' || approvedBy.trim() === '') throw new Error('approvedBy is required');
      if (typeof reason !== 'string' || reason.trim().length < 20) throw new Error('a written reason of at least 20 characters is required');
      const end = accessEndsAtMs(state.billing, config);
      const finalPending = state.phase === 'serving' && end !== null && !willRenew(state.billing) && Date.now() >= end;
      if (!finalPending || !state.needsAttention) throw new Error('only allowed while the final backup of an expired subscription is failing');
    },
  });

  // Only shown in the state query: does not wake the main loop and adds no timeline line.
  setHandler(backupProgressSignal, (progress) => {
    const current = backupInProgress;
    if (current === null || progress.idempotencyKey !== current.idempotencyKey) return;
    // Reports are sent without waiting for each other, so they may arrive out of order.
    if (current.reportedAt !== null && toMs(progress.at) < toMs(current.reportedAt)) return;
    backupInProgress = { ...current, phase: progress.phase, bytesDone: progress.bytesDone, bytesEstimate: progress.bytesEstimate, reportedAt: progress.at };
  });

  setHandler(stateQuery, () => view());

  // ---- derived views ---------------------------------------------------------------------------

  function scheduleInput(nowMs: number): ScheduleInput {
    return {
      customerId, nowMs, phase: state.phase, billing: state.billing, config,
      serverRunning: running(),
      lastActivityAtMs: toMs(state.lastActivityAt),
      remindersDone: state.remindersDone,
      expiryBackupsDone: state.expiryBackupsDone,
      nextPeriodicBackupAtMs: state.nextPeriodicBackupAt === null ? null : toMs(state.nextPeriodicBackupAt),
      retryAtMs: state.deletionOverride !== null || state.retryAt === null ? null : toMs(state.retryAt),
      dataKeptUntilMs: state.dataKeptUntil === null ? null : toMs(state.dataKeptUntil),
    };
  }

  function currentStage(): Stage {
    return deriveStage(state.phase, state.billing, config, Date.now(), running());
  }

  function upcoming(): Deadline | null {
    const input = scheduleInput(Date.now());
    return dueDeadline(input) ?? nextDeadline(input);
  }

  function view(): LifecycleView {
    const end = accessEndsAtMs(state.billing, config);
    const next = upcoming();
    const server = state.server;
    return {
      customerId,
      stage: currentStage(),
      plan: state.billing.plan,
      accessEndsAt: end === null ? null : toIso(end),
      willRenew: willRenew(state.billing),
      needsAttention: state.needsAttention,
      attentionReason: state.attentionReason,
      nextDeadline: next === null ? null : { at: toIso(next.atMs), action: next.action.kind, description: describeDeadline(next.action) },
      server: server === null ? null
        : server.power === 'hibernated' ? { power: 'hibernated', snapshotId: server.snapshotId }
        : { ...server.summary, power: server.power },
      recentBackups: [...state.recentBackups],
      backupInProgress: backupInProgress === null ? null : { ...backupInProgress },
      dataKeptUntil: state.dataKeptUntil,
      timeline: [...state.timeline],
      settings: {
        model: state.settings.model ?? null,
        timeZone: state.settings.timeZone ?? null,
        apiKeySaved: state.settings.apiKeySecretId !== undefined,
        pending: state.settingsPending,
      },
    };
  }

  /** Search attributes, current details and the projection row, each written only when changed. */
  async function publish(): Promise<void> {
    const v = view();
    const serverId = state.server !== null && state.server.power !== 'hibernated' ? state.server.summary.serverId : null;
    const wanted: SearchAttributeUpdatePair[] = [
      { key: CustomerIdKey, value: customerId },
      { key: PlanKey, value: state.billing.plan },
      { key: StageKey, value: v.stage },
      { key: ServerIdKey, value: serverId },
      { key: NeedsAttentionKey, value: state.needsAttention },
    ];
    const current = workflowInfo().typedSearchAttributes;
    const changes = wanted.filter((pair) => (current.get(pair.key as never) ?? null) !== pair.value);
    if (changes.length > 0) upsertSearchAttributes(changes);

    setCurrentDetails([
      `**Stage:** ${v.stage}${v.plan ? ` · **Plan:** ${v.plan}` : ''}${v.accessEndsAt ? ` · **Access ends:** ${v.accessEndsAt}${v.willRenew ? ' (renews)' : ''}` : ''}`,
      v.nextDeadline ? `**Waiting until** ${v.nextDeadline.at} to ${v.nextDeadline.description}, or for a billing event, user activity or update.` : '**Waiting** for a billing event, user activity or update.',
      state.needsAttention ? `**Needs attention:** ${state.attentionReason}` : '',
    ].filter(Boolean).join('\n\n'));

    const row: Omit<LifecycleProjection, 'asOf'> = {
      customerId, workflowId, stage: v.stage, plan: v.plan, accessEndsAt: v.accessEndsAt, willRenew: v.willRenew,
      needsAttention: v.needsAttention, attentionReason: v.attentionReason,
      server: {
        serverId,
        serverType: state.server === null ? null : state.server.power === 'hibernated' ? state.server.serverType : state.server.summary.serverType,
        power: state.server?.power ?? 'none',
        ipv4: state.server !== null && state.server.power !== 'hibernated' ? state.server.summary.ipv4 : null,
      },
      nextDeadline: v.nextDeadline === null ? null : { at: v.nextDeadline.at, action: v.nextDeadline.action },
      dataKeptUntil: v.dataKeptUntil,
      lastBackup: state.recentBackups.length === 0 ? null : (({ backupId, createdAt }) => ({ backupId, createdAt }))(state.recentBackups[state.recentBackups.length - 1]!),
    };
    const json = JSON.stringify(row);
    if (json !== state.lastProjectionJson) {
      try {
        await projection.writeProjection.executeWithOptions({ summary: `projection: ${v.stage}` }, [{ ...row, asOf: toIso(Date.now()) }]);
        state.lastProjectionJson = json;
      } catch (err) {
        log.warn('projection write failed', { customerId, error: failureMessage(err) });
      }
    }
  }

  // ---- side effects ------------------------------------------------------------------------------

  async function sendMailOnce(kind: MailKind, occasion: string, data: MailData): Promise<void> {
    const idempotencyKey = `${workflowId}:${kind}:${occasion}`;
    if (state.sentMailKeys.includes(idempotencyKey)) return;
    try {
      await mail.sendMail.executeWithOptions({ summary: `mail ${kind}` }, [{ customerId, kind, idempotencyKey, data }]);
      state.sentMailKeys.push(idempotencyKey);
      if (state.sentMailKeys.length > bounds.sentMailKeys) state.sentMailKeys.shift();
      note(`mail sent: ${kind}${data.daysLeft ? ` (${data.daysLeft} days)` : ''}`);
    } catch (err) {
      note(`mail ${kind} failed: ${failureMessage(err)}`);
    }
  }

  function rememberBackup(backup: BackupRecord): void {
    state.recentBackups.push(backup);
    if (state.recentBackups.length > bounds.recentBackups) state.recentBackups.shift();
    note(`backup ${backup.backupId} verified (${backup.reason})`);
  }

  async function backup(reason: BackupReason, occasion: string): Promise<BackupRecord> {
    const server = state.server;
    if (server === null || server.power !== 'running') throw ApplicationFailure.nonRetryable('server not running', ErrorType.InvalidInput);
    const idempotencyKey = `${workflowId}:backup:${reason}:${occasion}`;
    backupInProgress = { idempotencyKey, reason, startedAt: toIso(Date.now()), phase: null, bytesDone: 0, bytesEstimate: null, reportedAt: null };
    let record: BackupRecord;
    try {
      record = await backups.createBackup.executeWithOptions({ summary: `${reason} backup (verified)` }, [{
        customerId, serverId: server.summary.serverId, reason, idempotencyKey,
      }]);
    } finally {
      backupInProgress = null;
    }
    rememberBackup(record);
    return record;
  }

  /** Makes sure the server runs (for a backup); does not count as user activity. */
  async function ensureRunning(): Promise<void> {
    const server = state.server;
    if (server === null || server.power === 'running') return;
    if (server.power === 'hibernated') {
      const summary = patched(wakeFallbackPatch) ? await wakeOnAnyCandidate(server)
        : await cloud.wakeFromSnapshot.executeWithOptions({ summary: 'wake from hibernation snapshot' }, [{
          customerId, snapshotId: server.snapshotId, serverType: server.serverType, location: server.location,
        }]);
      state.server = { power: 'running', summary, plan: server.plan };
      note(`server ${summary.serverId} woken from snapshot ${server.snapshotId}`);
    } else {
      await cloud.powerOn.executeWithOptions({ summary: 'power on' }, [{ customerId, serverId: server.summary.serverId }]);
      state.server = { ...server, power: 'running' };
      note('server powered on');
    }
    if (state.settingsPending) await applySettings();
  }

  /**
   * Wakes a hibernated server on the type and location it had, else on its plan's current candidates:
   * a type Hetzner removed, deprecated or cannot give now (CapacityUnavailable), or one too small for
   * the snapshot (ServerTypeUnfit), is passed over. Throws CapacityUnavailable when none can be had.
   */
  async function wakeOnAnyCandidate(server: Extract<ServerState, { power: 'hibernated' }>): Promise<ServerSummary> {
    const candidates = [{ serverType: server.serverType, location: server.location }, ...config.plans[server.plan].candidates]
      .filter((c, i, all) => all.findIndex((o) => o.serverType === c.serverType && o.location === c.location) === i);
    const passedOver: string[] = [];
    for (const candidate of candidates) {
      try {
        return await cloud.wakeFromSnapshot.executeWithOptions({ summary: `wake from hibernation snapshot as ${candidate.serverType} in ${candidate.location}` }, [{
          customerId, snapshotId: server.snapshotId, ...candidate,
        }]);
      } catch (err) {
        const type = failureType(err);
        if (type !== ErrorType.CapacityUnavailable && type !== ErrorType.ServerTypeUnfit) throw err;
        passedOver.push(`${candidate.serverType}/${candidate.location}: ${type}`);
        note(`waking: ${candidate.serverType} in ${candidate.location} cannot be had (${type}), trying the next candidate`);
      }
    }
    throw ApplicationFailure.nonRetryable(`no server type can take hibernation snapshot ${server.snapshotId} now (${passedOver.join('; ')})`, ErrorType.CapacityUnavailable);
  }

  async function applySettings(): Promise<void> {
    const server = state.server;
    if (server === null || server.power !== 'running') return;
    await cloud.applySettings.executeWithOptions({ summary: 'apply assistant settings' }, [{ customerId, serverId: server.summary.serverId, settings: state.settings }]);
    state.settingsPending = false;
    note('settings applied');
  }

  function provisioningFailed(reason: string): void {
    state.failures += 1;
    state.retryAt = toIso(Date.now() + config.provisioningRetryMs);
    attention(reason);
  }

  /** Provisioning and restoring: a server from the plan's candidates, the assistant, the latest backup. */
  async function provision(): Promise<void> {
    const restoring = state.phase === 'restoring';
    const customerPlan = plan();
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
        note(`${candidate.serverType} in ${candidate.location} unavailable, trying the next candidate`);
      }
    }
    if (summary === null) {
      provisioningFailed(`provisioning failed (${errors.join('; ')})`);
      await sendMailOnce('provisioning_trouble', periodKey(), { plan: customerPlan });
      return;
    }
    state.server = { power: 'running', summary, plan: customerPlan };
    note(`server ${summary.serverId} (${summary.serverType}, ${summary.location}) is up`);
    let restoreWarning: string | null = null;
    try {
      await cloud.setupAssistant.executeWithOptions({ summary: 'set up the assistant' }, [{ customerId, serverId: summary.serverId, settings: state.settings }]);
      state.settingsPending = false;
      if (restoring) restoreWarning = await restoreLatest(summary.serverId);
    } catch (err) {
      provisioningFailed(`${restoring ? 'restoring' : 'setting up'} failed: ${failureMessage(err)}`);
      return;
    }
    state.phase = 'serving';
    state.retryAt = null;
    state.failures = 0;
    state.expiredAt = null;
    state.dataKeptUntil = null;
    state.lastActivityAt = toIso(Date.now());
    state.nextPeriodicBackupAt = config.dailyBackupEveryMs === null ? null : toIso(nextPeriodicBackupAt(customerId, config.dailyBackupEveryMs, Date.now()));
    clearAttention();
    // Provisioning trouble is over, but skipped corrupt backups still need an operator.
    if (restoreWarning !== null) attention(restoreWarning);
    await sendMailOnce('server_ready', `${restoring ? 'restored' : 'new'}:${periodKey()}`, {
      serverAddress: summary.ipv4, restored: restoring, plan: customerPlan,
    });
  }

  /**
   * Restores the newest verified backup; a corrupt one is skipped for the one before it.
   * Returns what needs an operator's attention (skipped backups), or null.
   */
  async function restoreLatest(serverId: string): Promise<string | null> {
    const skipped: string[] = [];
    for (;;) {
      const latest = await backups.latestVerifiedBackup.executeWithOptions({ summary: 'find the latest verified backup' }, [{ customerId, excludingBackupIds: skipped }]);
      if (latest === null) {
        note(skipped.length === 0 ? 'no backup to restore: starting fresh' : 'no usable backup left: starting fresh');
        return skipped.length > 0 ? `backups ${skipped.join(', ')} failed verification on restore; started fresh` : null;
      }
      try {
        await backups.restoreBackup.executeWithOptions({ summary: `restore backup ${latest.backupId}` }, [{ customerId, serverId, backupId: latest.backupId }]);
        note(`backup ${latest.backupId} restored`);
        return skipped.length > 0 ? `backups ${skipped.join(', ')} failed verification; restored ${latest.backupId}` : null;
      } catch (err) {
        if (failureType(err) !== ErrorType.BackupCorrupt) throw err;
        skipped.push(latest.backupId);
        note(`backup ${latest.backupId} is corrupt, falling back to the previous one`);
      }
    }
  }

  async function wake(): Promise<void> {
    state.wakeRequested = false;
    await ensureRunning();
    state.lastActivityAt = toIso(Date.now());
    if (config.dailyBackupEveryMs !== null) {
      state.nextPeriodicBackupAt = toIso(nextPeriodicBackupAt(customerId, config.dailyBackupEveryMs, Date.now()));
    }
  }

  async function goIdle(manual: boolean): Promise<void> {
    const server = state.server;
    if (server === null || server.power !== 'running') return;
    const serverId = server.summary.serverId;
    if (!manual && config.idle.policy === 'hibernate') {
      // Hibernation deletes the server: like expiry, only after a verified backup of it (invariant 1).
      const verified = await backup('before_hibernate', state.lastActivityAt);
      const { snapshotId } = await cloud.hibernate.executeWithOptions({ summary: 'hibernate (snapshot + delete)' }, [{ customerId, serverId, verifiedBackupId: verified.backupId }]);
      state.server = { power: 'hibernated', snapshotId, serverType: server.summary.serverType, location: server.summary.location, plan: server.plan };
      note(`idle: server ${serverId} hibernated as snapshot ${snapshotId}`);
    } else {
      await cloud.powerOff.executeWithOptions({ summary: manual ? 'power off (customer)' : 'power off (idle)' }, [{ customerId, serverId }]);
      state.server = { ...server, power: 'stopped' };
      note(manual ? 'server powered off by the customer' : `idle: server ${serverId} stopped`);
    }
  }

  /**
   * Moves a running or stopped server to the target plan without ever bouncing it in a loop: each
   * type of the plan is tried in place (the activity refuses before stopping the server when the type
   * cannot be had or does not fit); if the only types to be had do not fit (a smaller disk), the
   * server is rebuilt on the new plan from a verified backup; any other failure stops trying this
   * plan until a billing event names it again, and asks an operator (docs/decisions/012).
   */
  async function changePlanFitting(target: PlanId): Promise<void> {
    const server = state.server;
    if (server === null || server.power === 'hibernated') return;
    const types = [...new Set(config.plans[target].candidates.map((c) => c.serverType))];
    const unfit: string[] = [];
    for (const serverType of types) {
      try {
        const summary = await cloud.changeServerType.executeWithOptions({ summary: `change server type to ${serverType}` }, [{ customerId, serverId: server.summary.serverId, serverType }]);
        // The activity powers the server on after the change.
        state.server = { power: 'running', summary, plan: target };
        state.planChangeBlocked = null;
        note(`plan ${target}: server type changed to ${serverType}`);
        return;
      } catch (err) {
        const type = failureType(err);
        if (type === ErrorType.CapacityUnavailable) continue;
        if (type === ErrorType.ServerTypeUnfit) {
          unfit.push(serverType);
          continue;
        }
        state.planChangeBlocked = target;
        attention(`plan ${target}: changing the server type to ${serverType} failed (${failureMessage(err)}); the server keeps ${server.summary.serverType}; tried again with the next billing event that names the plan`);
        return;
      }
    }
    if (unfit.length > 0) {
      await rebuildForPlan(target, unfit);
      return;
    }
    state.planChangeBlocked = target;
    attention(`no server type of plan ${target} is available for the change`);
  }

  /**
   * The server cannot take the plan's types in place (Hetzner never shrinks a disk): a verified
   * backup of it, then its deletion (invariant 1), then the restoring phase creates the plan's server
   * (invariant 2: only after the old one is gone) and restores that backup. A failure before the
   * deletion leaves the server as it was; the main loop tries again after its cool-down.
   */
  async function rebuildForPlan(target: PlanId, unfit: string[]): Promise<void> {
    await ensureRunning();
    const server = state.server;
    if (server === null || server.power !== 'running') throw ApplicationFailure.nonRetryable('server not running', ErrorType.InvalidInput);
    const serverId = server.summary.serverId;
    const verified = await backup('before_plan_change', `${target}:${toIso(Date.now())}`);
    await cloud.deleteServer.executeWithOptions({ summary: 'delete the server (plan change rebuild)' }, [{ customerId, serverId, verifiedBackupId: verified.backupId }]);
    await projection.appendAudit({
      customerId, at: toIso(Date.now()), actor: 'workflow', action: 'server_deleted',
      details: { serverId, verifiedBackupId: verified.backupId, reason: `plan ${target}: ${unfit.join(', ')} cannot take this server's disk in place` },
    });
    note(`plan ${target}: ${unfit.join(', ')} cannot take server ${serverId} in place; deleted after verified backup ${verified.backupId}, rebuilding on the new plan`);
    state.server = null;
    state.phase = 'restoring';
    state.retryAt = null;
    state.failures = 0;
    state.planChangeBlocked = null;
  }

  async function changePlan(target: PlanId): Promise<void> {
    const server = state.server;
    if (server === null) return;
    if (server.power === 'hibernated') {
      const first = config.plans[target].candidates[0];
      state.server = { ...server, plan: target, serverType: first?.serverType ?? server.serverType };
      note(`plan ${target}: the server wakes as ${state.server.serverType}`);
      return;
    }
    const types = [...new Set(config.plans[target].candidates.map((c) => c.serverType))];
    for (const serverType of types) {
      try {
        const summary = await cloud.changeServerType.executeWithOptions({ summary: `change server type to ${serverType}` }, [{ customerId, serverId: server.summary.serverId, serverType }]);
        state.server = { power: server.power, summary, plan: target };
        note(`plan ${target}: server type changed to ${serverType}`);
        return;
      } catch (err) {
        if (failureType(err) !== ErrorType.CapacityUnavailable) throw err;
      }
    }
    state.planChangeBlocked = target;
    attention(`no server type of plan ${target} is available for the change`);
  }

  function markDone(record: Record<string, number[]>, periodEnd: string, days: number): void {
    record[periodEnd] = [...(record[periodEnd] ?? []), days];
    const keys = Object.keys(record);
    // Only recent periods matter; older ones are dropped so the carried state stays small.
    for (const key of keys.slice(0, Math.max(0, keys.length - bounds.periods))) delete record[key];
  }

  async function finalBackupAndDelete(periodEnd: string): Promise<void> {
    const override = state.deletionOverride;
    let verified: BackupRecord | null = null;
    if (override === null) {
      try {
        await ensureRunning();
        verified = await backup('final', periodEnd);
      } catch (err) {
        // Invariant 1: no verified backup, no delete. Keep the server and try again later.
        state.failures += 1;
        const delay = finalBackupRetryDelayMs(state.failures, config);
        state.retryAt = toIso(Date.now() + delay);
        attention(`final backup failed ${state.failures} time(s) (${failureMessage(err)}); server kept, next try at ${state.retryAt}`);
        return;
      }
    }
    const server = state.server;
    if (server !== null) {
      if (server.power === 'hibernated') {
        // Only reachable with an operator override: the snapshot is the server's data; waking is not attempted.
        note(`hibernation snapshot ${server.snapshotId} left for the operator to remove`);
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
        note(`server ${serverId} deleted${verified ? ` after verified backup ${verified.backupId}` : ' with operator override'}`);
      }
    }
    state.server = null;
    state.phase = 'expired';
    state.expiredAt = toIso(Date.now());
    // Retention counts from the end of access, not from when the (maybe retried) delete happened.
    state.dataKeptUntil = toIso(dataKeptUntilMs(toMs(periodEnd), state.billing.plan, config));
    state.retryAt = null;
    state.failures = 0;
    state.deletionOverride = null;
    state.nextPeriodicBackupAt = null;
    clearAttention();
    await sendMailOnce('expired', periodEnd, { accessEndsAt: periodEnd, dataKeptUntil: state.dataKeptUntil, plan: state.billing.plan ?? undefined });
  }

  async function runDeadline(deadline: Deadline): Promise<void> {
    const action = deadline.action;
    switch (action.kind) {
      case 'reminder':
        markDone(state.remindersDone, action.periodEnd, action.daysLeft);
        await sendMailOnce('access_ending', `${action.daysLeft}d:${action.periodEnd}`, {
          daysLeft: action.daysLeft, accessEndsAt: action.periodEnd,
          reason: state.billing.paymentFailedAt !== null ? 'payment_failing' : 'canceled', plan: state.billing.plan ?? undefined,
        });
        return;
      case 'expiry_backup':
        markDone(state.expiryBackupsDone, action.periodEnd, action.daysLeft);
        try {
          await ensureRunning();
          await backup('expiry', `${action.daysLeft}d:${action.periodEnd}`);
        } catch (err) {
          attention(`backup ${action.daysLeft} day(s) before expiry failed: ${failureMessage(err)}`);
        }
        return;
      case 'final_backup_and_delete':
        return finalBackupAndDelete(action.periodEnd);
      case 'retry_provisioning':
        state.retryAt = null;
        return;
      case 'purge':
        state.phase = 'purged';
        note('retention over: customer purged');
        await projection.appendAudit({ customerId, at: toIso(Date.now()), actor: 'workflow', action: 'customer_purged' });
        return;
      case 'go_idle':
        return goIdle(false);
      case 'periodic_backup':
        state.nextPeriodicBackupAt = toIso(nextPeriodicBackupAt(customerId, config.dailyBackupEveryMs ?? config.dayMs, Date.now()));
        try {
          await backup('daily', toIso(deadline.atMs));
        } catch (err) {
          note(`periodic backup failed: ${failureMessage(err)}`);
        }
        return;
    }
  }

  async function serve(pending: Pending): Promise<void> {
    const { request } = pending;
    try {
      switch (request.kind) {
        case 'backup_now':
          await ensureRunning();
          pending.result = await backup('manual', request.key);
          break;
        case 'restore': {
          await ensureRunning();
          await backup('before_restore', request.key);
          const server = state.server;
          if (server === null || server.power !== 'running') throw new Error('no running server');
          pending.result = await backups.restoreBackup.executeWithOptions({ summary: `restore backup ${request.backupId}` }, [{
            customerId, serverId: server.summary.serverId, backupId: request.backupId,
          }]);
          note(`backup ${request.backupId} restored on request`);
          break;
        }
        case 'power_on':
          await wake();
          break;
        case 'power_off':
          await goIdle(true);
          break;
        case 'apply_settings':
          if (running()) await applySettings();
          else note('settings saved; applied when the server runs');
          break;
      }
    } catch (err) {
      pending.error = ApplicationFailure.create({ message: failureMessage(err), type: failureType(err) ?? ErrorType.Transient, nonRetryable: true });
    }
    pending.done = true;
  }

  // ---- main loop ---------------------------------------------------------------------------------

  if (input.state === undefined) {
    note('lifecycle started');
    await sendMailOnce('welcome', 'signup', {});
  }

  for (;;) {
    // Reset before looking at the state: anything a handler changes from here on wakes the wait below.
    changed = false;
    if (state.unreportedEventIds.length > 0) {
      const eventIds = state.unreportedEventIds.splice(0);
      try {
        await billingActs.markEventsProcessed({ customerId, eventIds, processedAt: toIso(Date.now()) });
      } catch (err) {
        log.warn('marking billing events processed failed', { customerId, error: failureMessage(err) });
      }
    }
    const pending = queue.shift();
    if (pending !== undefined) {
      await serve(pending);
      continue;
    }
    if (state.phase === 'purged') break;

    const now = Date.now();
    const access = hasAccess(state.billing, config, now);
    if (state.phase === 'awaiting_payment' && access) {
      state.phase = 'provisioning';
      note('paid: provisioning');
    } else if (state.phase === 'expired' && access) {
      state.phase = 'restoring';
      note('renewed after expiry: restoring');
    }

    const cooling = state.cooldownUntil !== null && toMs(state.cooldownUntil) > now;
    if (!cooling) {
      try {
        if ((state.phase === 'provisioning' || state.phase === 'restoring') && state.retryAt === null) {
          await publish();
          await provision();
          continue;
        }
        if (state.phase === 'serving' && state.server !== null) {
          if (state.wakeRequested && access) {
            await wake();
            continue;
          }
          if (state.billing.plan !== null && state.server.plan !== state.billing.plan && state.planChangeBlocked !== state.billing.plan) {
            if (!patched(planChangePatch)) {
              await changePlan(state.billing.plan);
              continue;
            }
            // A hibernated server changes plan after it wakes: its snapshot keeps the old disk.
            if (state.server.power !== 'hibernated') {
              await changePlanFitting(state.billing.plan);
              continue;
            }
          }
        }
        const due = dueDeadline(scheduleInput(now));
        if (due !== null) {
          await runDeadline(due);
          continue;
        }
        state.cooldownUntil = null;
      } catch (err) {
        // An unexpected activity failure: do not fail the customer's workflow; flag it and try later.
        state.cooldownUntil = toIso(Date.now() + config.provisioningRetryMs);
        attention(`step failed: ${failureMessage(err)}`);
        continue;
      }
    }

    await publish();
    const info = workflowInfo();
    if (info.continueAsNewSuggested || info.historyLength >= config.maxHistoryEvents) {
      await condition(() => allHandlersFinished() || queue.length > 0);
      if (queue.length === 0 && state.unreportedEventIds.length === 0) {
        return await continueAsNew<typeof customerLifecycle>({ customerId, config: input.config, state });
      }
      continue;
    }

    // A deadline may have become due while publishing (activities take time): it counts, so the wait is short.
    const next = upcoming();
    const wakeAt = Math.min(next?.atMs ?? Infinity, cooling ? toMs(state.cooldownUntil!) : Infinity);
    const summary = next === null ? 'wait for a billing event or user activity' : describeDeadline(next.action);
    if (Number.isFinite(wakeAt)) {
      await condition(() => changed || queue.length > 0, Math.max(1, wakeAt - Date.now()), { summary });
    } else {
      await condition(() => changed || queue.length > 0);
    }
  }

  await publish();
  await condition(allHandlersFinished);
  if ((state.nextLifeEventIds?.length ?? 0) > 0 || state.nextLifeRequested === true) {
    // Nothing that arrived during the purge is lost: it starts the customer's next life.
    return await continueAsNew<typeof customerLifecycle>({ customerId, config: input.config, state: nextLife() });
  }
  return view();

  /** A fresh life that keeps what billing said (in any order), the events seen and the mails sent. */
  function nextLife(): LifecycleState {
    const fresh = initialState(toIso(Date.now()));
    return {
      ...fresh,
      billing: state.billing,
      lastEventCreated: state.lastEventCreated,
      seenEventIds: state.seenEventIds,
      unreportedEventIds: state.nextLifeEventIds ?? [],
      settings: state.settings,
      sentMailKeys: state.sentMailKeys,
      timeline: [{ at: toIso(Date.now()), what: `the customer came back after the purge: a new life starts (${state.nextLifeEventIds?.length ?? 0} billing event(s))` }],
    };
  }
}

/**
 * The lifecycle's state: what one run of the customer's workflow carries, plain JSON so it crosses
 * continue-as-new as the workflow input. Pure: no Temporal imports, no clock (callers pass the time).
 */
import type { AssistantSettings, BackupRecord, DeletionOverride, PlanId, ServerSummary } from '../../activities/contracts.ts';
import type { TimelineEntry } from '../messages.ts';
import { initialBillingState, toMs, type BillingState, type LifecycleConfig, type Phase, type ScheduleInput } from '../deadlines.ts';

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
 * Patch ids (workflow `patched()`): histories recorded before each change keep replaying the old path.
 * - billingFacts: each fact of a billing event is ordered on its own (billing-facts.ts), and access
 *   starts only on money; before, a whole event older than the newest one was dropped.
 * - nextLife: messages that arrive after the purge start the customer's next life instead of being
 *   absorbed by a run about to complete.
 * - planChange: a plan change passes over types that cannot be had or do not fit, rebuilds when only
 *   smaller disks are left, and waits for a hibernated server to wake (docs/decisions/012).
 * - wakeFallback: a hibernated server wakes on its plan's current candidates when its type is gone.
 */
export const lifecyclePatches = {
  billingFacts: 'billing-facts-ordered-one-by-one',
  nextLife: 'messages-after-purge-start-next-life',
  planChange: 'plan-change-fits-or-rebuilds',
  wakeFallback: 'wake-falls-back-over-candidates',
} as const;

/** How many of each kept list the state holds, so it stays small across continue-as-new. */
export const bounds = { seenEventIds: 500, sentMailKeys: 200, recentBackups: 10, timeline: 30, periods: 6 };

/** Appends to a bounded list, dropping the oldest entries beyond `max`. */
export function pushBounded<T>(list: T[], item: T, max: number): void {
  list.push(item);
  if (list.length > max) list.splice(0, list.length - max);
}

/** A new customer's state: waiting for payment, no server. */
export function initialState(nowIso: string): LifecycleState {
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

/** Something arrived while the customer was purged: the run ends by starting a next life. */
export function nextLifeDue(state: LifecycleState): boolean {
  return (state.nextLifeEventIds?.length ?? 0) > 0 || state.nextLifeRequested === true;
}

/** A fresh life that keeps what billing said (in any order), the events seen and the mails sent. */
export function nextLifeState(state: LifecycleState, nowIso: string): LifecycleState {
  return {
    ...initialState(nowIso),
    billing: state.billing,
    lastEventCreated: state.lastEventCreated,
    seenEventIds: state.seenEventIds,
    unreportedEventIds: state.nextLifeEventIds ?? [],
    settings: state.settings,
    sentMailKeys: state.sentMailKeys,
    timeline: [{ at: nowIso, what: `the customer came back after the purge: a new life starts (${state.nextLifeEventIds?.length ?? 0} billing event(s))` }],
  };
}

/** The customer's plan, or Starter before billing named one. */
export function planOf(state: LifecycleState): PlanId {
  return state.billing.plan ?? 'starter';
}

export function serverRunning(state: LifecycleState): boolean {
  return state.server?.power === 'running';
}

/** What the pure schedule (deadlines.ts) needs from the state at `nowMs`. */
export function scheduleInput(state: LifecycleState, nowMs: number, customerId: string, config: LifecycleConfig): ScheduleInput {
  return {
    customerId, nowMs, phase: state.phase, billing: state.billing, config,
    serverRunning: serverRunning(state),
    lastActivityAtMs: toMs(state.lastActivityAt),
    remindersDone: state.remindersDone,
    expiryBackupsDone: state.expiryBackupsDone,
    nextPeriodicBackupAtMs: state.nextPeriodicBackupAt === null ? null : toMs(state.nextPeriodicBackupAt),
    retryAtMs: state.deletionOverride !== null || state.retryAt === null ? null : toMs(state.retryAt),
    dataKeptUntilMs: state.dataKeptUntil === null ? null : toMs(state.dataKeptUntil),
  };
}

/** Marks an offset step (reminder, expiry backup) of a period done; only the last few periods are kept. */
export function markDone(record: Record<string, number[]>, periodEnd: string, days: number): void {
  record[periodEnd] = [...(record[periodEnd] ?? []), days];
  const keys = Object.keys(record);
  for (const key of keys.slice(0, Math.max(0, keys.length - bounds.periods))) delete record[key];
}

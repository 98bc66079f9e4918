/**
 * Pure lifecycle timing: when access ends, which reminder or backup is due, what the next deadline
 * is. No Temporal imports, no clock: every function takes `nowMs`, so unit tests call them directly
 * and the workflow passes its deterministic `Date.now()`. All times are UTC milliseconds or ISO strings.
 */
import { plans, type Plan, type PlanId, type ServerCandidate, type Stage } from '../lib/product.ts';
import type { BillingFacts } from './billing-facts.ts';
import type { BillingEvent } from './messages.ts';

export type { ServerCandidate } from '../lib/product.ts';

/** A plan as the lifecycle uses it (workflow input: recorded histories carry this shape). */
export interface PlanConfig {
  /** Tried in order; the next one is used when one is unavailable (CapacityUnavailable). */
  candidates: ServerCandidate[];
  /** Days backups are kept after access ended. */
  retentionDays: number;
}

/**
 * Every timing of the lifecycle. Production uses {@link defaultLifecycleConfig}; the history
 * recorder shrinks `dayMs` so a month passes in seconds of real time.
 */
export interface LifecycleConfig {
  /** Length of one "day" of the offsets below (86 400 000 in production). */
  dayMs: number;
  /** Reminders this many days before access ends, only when not renewing. */
  reminderDays: number[];
  /** Backups this many days before access ends, only when not renewing. */
  expiryBackupDays: number[];
  /** Days of access after the first failed payment (the past-due grace period). */
  graceDays: number;
  /** Idle policy: after `afterMs` without user activity stop or hibernate the server; null = never. */
  idle: { afterMs: number | null; policy: 'stop' | 'hibernate' };
  /** Periodic backups every `everyMs` (null = off) at a per-customer offset spread over the interval. */
  dailyBackupEveryMs: number | null;
  /** Backoff of the final backup when it keeps failing: doubles from initialMs up to maxMs. */
  finalBackupRetry: { initialMs: number; maxMs: number };
  /** Wait before trying all provisioning candidates again after they all failed. */
  provisioningRetryMs: number;
  plans: Record<PlanId, PlanConfig>;
  /** Continue-as-new once a run's history has this many events (besides the server's suggestion). */
  maxHistoryEvents: number;
}

const hour = 3_600_000;
const day = 24 * hour;

/** The lifecycle's plan policy from the plans Berth sells (lib/product.ts): server candidates and retention. */
export function lifecyclePlans(from: Readonly<Record<PlanId, Plan>>): Record<PlanId, PlanConfig> {
  const entries = Object.values(from).map((plan) => [plan.id, { candidates: plan.servers.map((s) => ({ ...s })), retentionDays: plan.backupRetentionDays }]);
  return Object.fromEntries(entries) as Record<PlanId, PlanConfig>;
}

/** Production timings (the seed's: 7/3/1 reminders, backups at 3 and 1 days, idle after 24 h). */
export const defaultLifecycleConfig: LifecycleConfig = {
  dayMs: day,
  reminderDays: [7, 3, 1],
  expiryBackupDays: [3, 1],
  graceDays: 7,
  idle: { afterMs: 24 * hour, policy: 'stop' },
  dailyBackupEveryMs: day,
  finalBackupRetry: { initialMs: 15 * 60_000, maxMs: 6 * hour },
  provisioningRetryMs: hour,
  plans: lifecyclePlans(plans),
  maxHistoryEvents: 10_000,
};

/** Fills a partial config from the defaults (plans are replaced per plan, not merged field by field). */
export function resolveConfig(partial: Partial<LifecycleConfig> | undefined): LifecycleConfig {
  return {
    ...defaultLifecycleConfig,
    ...partial,
    idle: { ...defaultLifecycleConfig.idle, ...partial?.idle },
    finalBackupRetry: { ...defaultLifecycleConfig.finalBackupRetry, ...partial?.finalBackupRetry },
    plans: { ...defaultLifecycleConfig.plans, ...partial?.plans },
  };
}

/**
 * What the workflow knows about the subscription, from billing events: a summary the schedule
 * reads, recomputed from `facts` (workflows/billing-facts.ts) after each event. States kept before
 * facts existed have none until their next event.
 */
export interface BillingState {
  /** Money came for the current subscription (a paid invoice or checkout since it last ended). */
  subscribed: boolean;
  /** End of the paid period as billing reports it (ISO), or null. */
  periodEndsAt: string | null;
  plan: PlanId | null;
  /** Will not renew: canceled at period end, or the subscription ended or is paused. */
  cancelAtPeriodEnd: boolean;
  /** ISO time of the first failed payment not yet recovered, or null. */
  paymentFailedAt: string | null;
  facts?: BillingFacts;
}

export const initialBillingState: BillingState = {
  subscribed: false,
  periodEndsAt: null,
  plan: null,
  cancelAtPeriodEnd: false,
  paymentFailedAt: null,
};

export const toMs = (iso: string): number => Date.parse(iso);
export const toIso = (ms: number): string => new Date(ms).toISOString();

/** The subscription renews by itself: not canceled at period end and no payment failing. */
export function willRenew(billing: BillingState): boolean {
  return !billing.cancelAtPeriodEnd && billing.paymentFailedAt === null;
}

/**
 * When access ends: the period end, or while a payment is failing the end of the grace period
 * counted from the first failure (Stripe moves the period end forward even when the renewal fails).
 */
export function accessEndsAtMs(billing: BillingState, config: LifecycleConfig): number | null {
  if (billing.paymentFailedAt !== null) {
    return toMs(billing.paymentFailedAt) + config.graceDays * config.dayMs;
  }
  return billing.periodEndsAt === null ? null : toMs(billing.periodEndsAt);
}

/** The customer may have a server now. */
export function hasAccess(billing: BillingState, config: LifecycleConfig, nowMs: number): boolean {
  const end = accessEndsAtMs(billing, config);
  return billing.subscribed && end !== null && nowMs < end;
}

/**
 * The offset (in days before `endMs`) whose step is due now, or null. Steps are due from
 * `end - days` until `end`. After an outage several may be due at once: only the latest (smallest
 * offset) is returned, and none once that one or a later one is done, so a customer never gets the
 * 7-day and the 3-day reminder at the same moment.
 */
export function dueOffset(endMs: number, offsetsDays: readonly number[], dayMs: number, nowMs: number, doneDays: readonly number[]): number | null {
  if (nowMs >= endMs) return null;
  const due = offsetsDays.filter((d) => endMs - d * dayMs <= nowMs);
  if (due.length === 0) return null;
  const latest = Math.min(...due);
  if (doneDays.some((d) => d <= latest)) return null;
  return latest;
}

/** The time of the next offset step after `nowMs` (strictly later), or null. */
export function nextOffsetAt(endMs: number, offsetsDays: readonly number[], dayMs: number, nowMs: number): number | null {
  const times = offsetsDays.map((d) => endMs - d * dayMs).filter((t) => t > nowMs && t < endMs);
  return times.length === 0 ? null : Math.min(...times);
}

/** FNV-1a 32-bit hash: spreads customers over the backup interval deterministically. */
export function spreadHash(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash >>> 0;
}

/** The customer's first periodic backup slot strictly after `afterMs` (slots sit at a per-customer offset). */
export function nextPeriodicBackupAt(customerId: string, everyMs: number, afterMs: number): number {
  const offset = spreadHash(customerId) % everyMs;
  let slot = Math.floor((afterMs - offset) / everyMs) * everyMs + offset;
  while (slot <= afterMs) slot += everyMs;
  return slot;
}

/** Until when backups are kept after access ended, by plan. */
export function dataKeptUntilMs(expiredAtMs: number, plan: PlanId | null, config: LifecycleConfig): number {
  const days = config.plans[plan ?? 'starter'].retentionDays;
  return expiredAtMs + days * config.dayMs;
}

/** Delay before the next final-backup attempt after `failures` failed ones (exponential, capped). */
export function finalBackupRetryDelayMs(failures: number, config: LifecycleConfig): number {
  const { initialMs, maxMs } = config.finalBackupRetry;
  return Math.min(maxMs, initialMs * 2 ** Math.max(0, failures - 1));
}

/** Where the customer is, seen from the server's side; the stage adds billing to it. */
export type Phase = 'awaiting_payment' | 'provisioning' | 'restoring' | 'serving' | 'expired' | 'purged';

/** What the workflow will do by itself. */
export type DeadlineAction =
  | { kind: 'reminder'; daysLeft: number; periodEnd: string }
  | { kind: 'expiry_backup'; daysLeft: number; periodEnd: string }
  | { kind: 'final_backup_and_delete'; periodEnd: string }
  | { kind: 'retry_provisioning' }
  | { kind: 'purge' }
  | { kind: 'go_idle' }
  | { kind: 'periodic_backup' };

export interface Deadline {
  atMs: number;
  action: DeadlineAction;
}

/** Everything the schedule depends on; the workflow builds this from its state. */
export interface ScheduleInput {
  customerId: string;
  nowMs: number;
  phase: Phase;
  billing: BillingState;
  config: LifecycleConfig;
  /** The server is running (false when stopped, hibernated or absent). */
  serverRunning: boolean;
  lastActivityAtMs: number;
  /** Per period end (ISO): offsets already handled. */
  remindersDone: Record<string, number[]>;
  expiryBackupsDone: Record<string, number[]>;
  nextPeriodicBackupAtMs: number | null;
  /** Set while a failed step (final backup, provisioning) waits for its next attempt. */
  retryAtMs: number | null;
  dataKeptUntilMs: number | null;
}

/**
 * All deadlines of the current state, due ones (atMs <= now) included, in the order they should
 * run: earliest first; at equal times the final step before backups before reminders.
 */
export function deadlines(input: ScheduleInput): Deadline[] {
  const { nowMs, phase, billing, config } = input;
  const out: Deadline[] = [];
  if (phase === 'provisioning' || phase === 'restoring') {
    if (input.retryAtMs !== null) out.push({ atMs: input.retryAtMs, action: { kind: 'retry_provisioning' } });
  }
  if (phase === 'expired' && input.dataKeptUntilMs !== null) {
    out.push({ atMs: input.dataKeptUntilMs, action: { kind: 'purge' } });
  }
  if (phase === 'serving') {
    const end = accessEndsAtMs(billing, config);
    if (end !== null && !willRenew(billing)) {
      const periodEnd = toIso(end);
      out.push({ atMs: Math.max(end, input.retryAtMs ?? end), action: { kind: 'final_backup_and_delete', periodEnd } });
      const backupDue = dueOffset(end, config.expiryBackupDays, config.dayMs, nowMs, input.expiryBackupsDone[periodEnd] ?? []);
      if (backupDue !== null) out.push({ atMs: nowMs, action: { kind: 'expiry_backup', daysLeft: backupDue, periodEnd } });
      const nextBackup = nextOffsetAt(end, config.expiryBackupDays, config.dayMs, nowMs);
      if (nextBackup !== null) {
        out.push({ atMs: nextBackup, action: { kind: 'expiry_backup', daysLeft: Math.round((end - nextBackup) / config.dayMs), periodEnd } });
      }
      const reminderDue = dueOffset(end, config.reminderDays, config.dayMs, nowMs, input.remindersDone[periodEnd] ?? []);
      if (reminderDue !== null) out.push({ atMs: nowMs, action: { kind: 'reminder', daysLeft: reminderDue, periodEnd } });
      const nextReminder = nextOffsetAt(end, config.reminderDays, config.dayMs, nowMs);
      if (nextReminder !== null) {
        out.push({ atMs: nextReminder, action: { kind: 'reminder', daysLeft: Math.round((end - nextReminder) / config.dayMs), periodEnd } });
      }
    }
    if (input.serverRunning && input.nextPeriodicBackupAtMs !== null) {
      out.push({ atMs: input.nextPeriodicBackupAtMs, action: { kind: 'periodic_backup' } });
    }
    if (input.serverRunning && config.idle.afterMs !== null) {
      out.push({ atMs: input.lastActivityAtMs + config.idle.afterMs, action: { kind: 'go_idle' } });
    }
  }
  const rank: Record<DeadlineAction['kind'], number> = {
    final_backup_and_delete: 0, purge: 0, retry_provisioning: 0, expiry_backup: 1, reminder: 2, periodic_backup: 3, go_idle: 4,
  };
  // Anything overdue counts as due now, so a missed step sorts by kind, not by how late it is.
  return out.sort((a, b) => Math.max(a.atMs, nowMs) - Math.max(b.atMs, nowMs) || rank[a.action.kind] - rank[b.action.kind]);
}

/** The deadline to act on now, or null. */
export function dueDeadline(input: ScheduleInput): Deadline | null {
  const first = deadlines(input)[0];
  return first !== undefined && first.atMs <= input.nowMs ? first : null;
}

/** The next deadline strictly in the future (what the workflow sleeps until), or null. */
export function nextDeadline(input: ScheduleInput): Deadline | null {
  return deadlines(input).find((d) => d.atMs > input.nowMs) ?? null;
}

/** The stage operators and pages see: the phase, refined by billing and power. */
export function deriveStage(phase: Phase, billing: BillingState, config: LifecycleConfig, nowMs: number, serverRunning: boolean): Stage {
  if (phase !== 'serving') return phase;
  if (billing.paymentFailedAt !== null) return 'past_due';
  const end = accessEndsAtMs(billing, config);
  const window = Math.max(0, ...config.reminderDays) * config.dayMs;
  if (end !== null && !willRenew(billing) && nowMs >= end - window) return 'expiring';
  return serverRunning ? 'active' : 'idle';
}

/** A one-line description of a deadline for the query and the Web UI. */
export function describeDeadline(action: DeadlineAction): string {
  switch (action.kind) {
    case 'reminder': return `mail the ${action.daysLeft}-day reminder before access ends at ${action.periodEnd}`;
    case 'expiry_backup': return `back up the server ${action.daysLeft} day(s) before access ends`;
    case 'final_backup_and_delete': return 'take the verified final backup, then delete the server';
    case 'retry_provisioning': return 'try provisioning the server again';
    case 'purge': return 'retention over: mark the customer purged and complete';
    case 'go_idle': return 'no user activity: stop or hibernate the idle server';
    case 'periodic_backup': return 'take the periodic backup';
  }
}

/**
 * Applies one (new, not stale) billing event to the billing state, the whole event by one clock:
 * how workflows that started before billing facts were ordered one by one keep replaying.
 */
export function applyBillingEvent(billing: BillingState, event: BillingEvent): void {
  if (event.plan !== undefined) billing.plan = event.plan;
  if (event.cancelAtPeriodEnd !== undefined) billing.cancelAtPeriodEnd = event.cancelAtPeriodEnd;
  switch (event.type) {
    case 'checkout_completed':
    case 'invoice_paid':
      billing.subscribed = true;
      billing.paymentFailedAt = null;
      if (event.accessEndsAt !== undefined) billing.periodEndsAt = event.accessEndsAt;
      break;
    case 'payment_failed':
      billing.paymentFailedAt ??= event.created;
      if (event.accessEndsAt !== undefined) billing.periodEndsAt = event.accessEndsAt;
      break;
    case 'subscription_updated':
      if (event.accessEndsAt !== undefined) billing.periodEndsAt = event.accessEndsAt;
      break;
    case 'subscription_deleted': {
      // Ended now: access stops at the earlier of what was paid for and the end Stripe reports.
      const endedAt = toMs(event.accessEndsAt ?? event.created);
      const paidUntil = billing.periodEndsAt === null ? endedAt : toMs(billing.periodEndsAt);
      billing.periodEndsAt = toIso(Math.min(paidUntil, endedAt));
      billing.paymentFailedAt = null;
      billing.cancelAtPeriodEnd = true;
      break;
    }
  }
}

import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { AssistantSettings, BackupPhase, BackupProgressReport, BackupReason, BackupRecord, PlanId, ServerSummary } from '../activities/contracts.ts';
import type { Stage } from '../lib/product.ts';

/** Lifecycle stages (lib/product.ts), in the order a customer usually meets them. */
export { stages, type Stage } from '../lib/product.ts';

/** Normalized billing event types (activities/billing/billing-event.ts maps Stripe events onto these). */
export type BillingEventType =
  /** checkout.session.completed (or a delayed payment of it succeeded); `paid` false: no money yet. */
  | 'checkout_completed'
  /** invoice.paid: a period is paid (first or renewal, or a failed payment recovered). */
  | 'invoice_paid'
  /** invoice.payment_failed / payment_action_required, or a checkout's delayed payment failed. */
  | 'payment_failed'
  /** customer.subscription.created/updated: period end, plan or cancel-at-period-end changed. */
  | 'subscription_updated'
  /** customer.subscription.deleted: the subscription ended now. */
  | 'subscription_deleted';

/** A billing event, normalized from Stripe. Fields left out keep their previous value. */
export interface BillingEvent {
  /** Stripe event id; an event with an id already seen is ignored. */
  eventId: string;
  type: BillingEventType;
  /**
   * ISO time Stripe created the event. Each fact it carries (plan, period, cancellation, status,
   * payment) is ordered by this time on its own: an older event never overwrites a newer value of
   * the same fact, but still counts for the facts nothing newer has said (workflows/billing-facts.ts).
   */
  created: string;
  /** ISO end of the paid period (subscription item's current_period_end). */
  accessEndsAt?: string;
  plan?: PlanId;
  cancelAtPeriodEnd?: boolean;
  /** Stripe's subscription status, when the event carries the subscription. */
  subscriptionStatus?: SubscriptionStatus;
  /** checkout_completed only: false when no money came with it (a delayed payment method). Absent: paid. */
  paid?: boolean;
}

/** Stripe's subscription statuses (activities/billing/stripe-shapes.ts refuses any other). */
export type SubscriptionStatus = 'incomplete' | 'incomplete_expired' | 'trialing' | 'active' | 'past_due' | 'unpaid' | 'paused' | 'canceled';

/** Payload of the user-activity signal (the customer used the dashboard, chat or terminal). */
export interface UserActivity {
  /** What they did, for the timeline only. */
  source?: string;
}

/** One line of the short timeline in the state query. */
export interface TimelineEntry {
  at: string;
  what: string;
}

/** The backup the workflow is running now, with the latest progress its activity reported. */
export interface BackupInProgress {
  idempotencyKey: string;
  reason: BackupReason;
  /** ISO time the workflow started the backup. */
  startedAt: string;
  /** Null until the first progress report arrived. */
  phase: BackupPhase | null;
  bytesDone: number;
  bytesEstimate: number | null;
  /** ISO time of the latest progress report, or null before the first. */
  reportedAt: string | null;
}

/** The answer of the state query. */
export interface LifecycleView {
  customerId: string;
  stage: Stage;
  plan: PlanId | null;
  /** When access ends (after a failed payment: end of the grace period), or null before payment. */
  accessEndsAt: string | null;
  willRenew: boolean;
  needsAttention: boolean;
  attentionReason: string | null;
  /** The next thing the workflow will do by itself, and when. */
  nextDeadline: { at: string; action: string; description: string } | null;
  server: (ServerSummary & { power: 'running' | 'stopped' }) | { power: 'hibernated'; snapshotId: string } | null;
  recentBackups: BackupRecord[];
  /** The backup running now (bytes done, estimate), or null. Progress is best effort and may lag. */
  backupInProgress: BackupInProgress | null;
  dataKeptUntil: string | null;
  timeline: TimelineEntry[];
  /** The assistant's settings as the customer chose them; `pending` until applied on the server. */
  settings: { model: string | null; timeZone: string | null; apiKeySaved: boolean; pending: boolean };
}

/** Input of the operator update that allows deleting a server without a final backup. */
export interface ApproveDeletionInput {
  approvedBy: string;
  /** A written reason (at least 20 characters); it goes to the audit log. */
  reason: string;
}

/**
 * Stripe events for this customer, normalized. Duplicates are ignored; each fact an event carries is
 * ordered on its own (billing-facts.ts); one that arrives after the purge starts the next life.
 */
export const billingEventSignal = defineSignal<[BillingEvent]>('billingEvent');
/**
 * The customer did something (dashboard, chat, terminal): wakes an idle server, resets the idle
 * clock; after the purge, starts the customer's next life.
 */
export const userActivitySignal = defineSignal<[UserActivity]>('userActivity');

/**
 * Progress of the running backup, sent by the createBackup activity (best effort, at most every 10 s).
 * Shown in the state query; reports of another or an already finished backup are ignored.
 */
export const backupProgressSignal = defineSignal<[BackupProgressReport]>('backupProgress');

/** Back up the server now; resolves with the verified backup. */
export const backupNowUpdate = defineUpdate<BackupRecord, []>('backupNow');
/** Restore a backup onto the server (after a safety backup of the current data). */
export const restoreBackupUpdate = defineUpdate<{ restoredAt: string }, [{ backupId: string }]>('restoreBackup');
/** Power the server on (wakes it from hibernation if needed). */
export const powerOnUpdate = defineUpdate<void, []>('powerOn');
/** Power the server off (it stays billed; the idle policy may hibernate instead). */
export const powerOffUpdate = defineUpdate<void, []>('powerOff');
/** Change assistant settings; applied now if the server runs, on wake otherwise. */
export const applySettingsUpdate = defineUpdate<void, [AssistantSettings]>('applySettings');
/** Operator: allow deleting the server although no final backup could be made. */
export const approveDeletionWithoutBackupUpdate = defineUpdate<void, [ApproveDeletionInput]>('approveDeletionWithoutBackup');

/** The customer's lifecycle state. */
export const stateQuery = defineQuery<LifecycleView>('state');

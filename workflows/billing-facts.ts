/**
 * What billing events say, fact by fact, each fact ordered by its own clock (docs/decisions/014).
 *
 * Stripe sends events at least once and in any order, and one event carries several facts: a
 * `customer.subscription.updated` of a renewal says the period moved *and* that the payment is
 * failing; an `invoice.payment_failed` one second older says when the failure started. Ordering
 * whole events by one clock dropped the older failure as stale. Here each fact is merged on its own,
 * with a merge that does not depend on arrival order:
 * - plan, cancellation, period end, subscription status: the newest value wins (latest `created`;
 *   a tie is broken by the value, so any order gives the same winner);
 * - money: the newest paid event and the furthest paid-for period end (maxima);
 * - payment failing: the failures that nothing newer has cleared; the earliest of them is when the
 *   failure started. A failed invoice names the period it leaves unpaid, so it is cleared by money
 *   for that period (whatever its timestamp), or by a payment or an `active`/`trialing` subscription
 *   strictly newer. Other signs of failure (a past_due or unpaid subscription, a failed delayed
 *   checkout payment) have only their time: anything at least as new clears them. Stripe's clock
 *   counts seconds, so these rules are what decides between events of the same second.
 * The summary the lifecycle reads (BillingState's subscribed, periodEndsAt, plan, cancelAtPeriodEnd,
 * paymentFailedAt) is recomputed from the facts after each event. Pure: unit tests call it directly.
 */
import type { PlanId } from '../activities/contracts.ts';
import type { BillingState } from './deadlines.ts';
import type { BillingEvent, SubscriptionStatus } from './messages.ts';

/** A sign that a payment is failing: when it was said and, for a failed invoice, the period it leaves unpaid. */
export interface Failure {
  at: string;
  unpaidFrom: string | null;
}

/** A fact's value and the `created` (ISO) of the event that said it. */
export interface Stamped<T> {
  value: T;
  at: string;
}

/** Everything billing events said, merged fact by fact. Plain JSON: carried across continue-as-new. */
export interface BillingFacts {
  plan: Stamped<PlanId> | null;
  cancelAtPeriodEnd: Stamped<boolean> | null;
  /** The end of the subscription's current period (or of its access, once it ended). */
  periodEndsAt: Stamped<string> | null;
  status: Stamped<SubscriptionStatus> | null;
  /** `created` of the newest event that brought money (a paid invoice, a paid checkout). */
  lastPaidAt: string | null;
  /** The end of the furthest period paid for (a paid invoice's or checkout's period end). */
  paidThrough: string | null;
  /** `created` of the newest evidence that payments are in order: money, or status active/trialing. */
  lastGoodStandingAt: string | null;
  /**
   * Signs of a failing payment not cleared yet, by `created` ascending: `unpaidFrom` is the start of
   * the period a failed invoice leaves unpaid (null for signs that name no period).
   */
  failures: Failure[];
  /** `created` of the newest sign that a subscription ended (canceled, incomplete_expired, paused). */
  lastEndedAt: string | null;
}

export const emptyBillingFacts: BillingFacts = {
  plan: null, cancelAtPeriodEnd: null, periodEndsAt: null, status: null,
  lastPaidAt: null, paidThrough: null, lastGoodStandingAt: null, failures: [], lastEndedAt: null,
};

/** Statuses after which the subscription gives no access until money comes again. */
const endedStatuses: ReadonlySet<SubscriptionStatus> = new Set(['canceled', 'incomplete_expired', 'paused']);
/** Statuses that show payments in order. */
const goodStandingStatuses: ReadonlySet<SubscriptionStatus> = new Set(['active', 'trialing']);
/** Statuses that show a payment failing (Stripe still retrying, or given up with the invoice open). */
const failingStatuses: ReadonlySet<SubscriptionStatus> = new Set(['past_due', 'unpaid']);
/** At equal `created`, the status that wins: an ending is final, a failure outweighs good standing. */
const statusRank: Record<SubscriptionStatus, number> = {
  canceled: 7, incomplete_expired: 6, paused: 5, unpaid: 4, past_due: 3, incomplete: 2, active: 1, trialing: 0,
};
/** More failures than this in one streak are not kept (Stripe retries an invoice at most 8 times). */
const maxFailures = 64;

const ms = (iso: string): number => Date.parse(iso);
const later = (a: string | null, b: string): string => (a === null || ms(b) > ms(a) ? b : a);

/**
 * Merges one billing event into `billing` (its facts, then its summary). Returns the facts the
 * event changed and those it was too old for (a newer value of that fact was known).
 */
export function recordBillingEvent(billing: BillingState, event: BillingEvent): { applied: string[]; stale: string[] } {
  const facts = billing.facts ?? { ...emptyBillingFacts, failures: [] };
  const applied: string[] = [];
  const stale: string[] = [];
  const at = event.created;

  const newest = <K extends 'plan' | 'cancelAtPeriodEnd' | 'periodEndsAt' | 'status'>(
    fact: K, value: NonNullable<BillingFacts[K]>['value'], tieWins: (held: NonNullable<BillingFacts[K]>['value']) => boolean,
  ): void => {
    const held = facts[fact] as Stamped<typeof value> | null;
    const newer = held === null || ms(at) > ms(held.at) || (ms(at) === ms(held.at) && held.value !== value && tieWins(held.value));
    if (!newer) {
      if (held !== null && ms(at) < ms(held.at)) stale.push(fact);
      return;
    }
    (facts[fact] as Stamped<typeof value>) = { value, at };
    applied.push(fact);
  };

  if (event.plan !== undefined) newest('plan', event.plan, (held) => event.plan! > held);
  const cancel = event.type === 'subscription_deleted' ? true : event.cancelAtPeriodEnd;
  if (cancel !== undefined) newest('cancelAtPeriodEnd', cancel, () => cancel);

  const status = event.subscriptionStatus ?? (event.type === 'subscription_deleted' ? 'canceled' : undefined);
  if (status !== undefined) newest('status', status, (held) => statusRank[status] > statusRank[held]);

  // A failed invoice's accessEndsAt is where the paid period ends, not the subscription's period.
  const period = event.type === 'subscription_deleted' ? (event.accessEndsAt ?? at) : event.type === 'payment_failed' ? undefined : event.accessEndsAt;
  if (period !== undefined) newest('periodEndsAt', period, (held) => ms(period) > ms(held));

  const money = event.type === 'invoice_paid' || (event.type === 'checkout_completed' && event.paid !== false);
  const track = (name: string, before: unknown, after: unknown): void => {
    if (JSON.stringify(before) !== JSON.stringify(after)) applied.push(name);
  };
  if (money) {
    track('payment', facts.lastPaidAt, (facts.lastPaidAt = later(facts.lastPaidAt, at)));
  }
  const paidEnd = money ? event.accessEndsAt : undefined;
  if (paidEnd !== undefined) track('paid period', facts.paidThrough, (facts.paidThrough = later(facts.paidThrough, paidEnd)));

  const before = JSON.stringify([facts.lastGoodStandingAt, facts.failures, facts.lastEndedAt]);
  if (money || (status !== undefined && goodStandingStatuses.has(status))) facts.lastGoodStandingAt = later(facts.lastGoodStandingAt, at);
  if (event.type === 'payment_failed') facts.failures.push({ at, unpaidFrom: event.accessEndsAt ?? null });
  if (status !== undefined && failingStatuses.has(status)) facts.failures.push({ at, unpaidFrom: null });
  if (status !== undefined && endedStatuses.has(status)) facts.lastEndedAt = later(facts.lastEndedAt, at);
  facts.failures = uncleared(facts);
  if (JSON.stringify([facts.lastGoodStandingAt, facts.failures, facts.lastEndedAt]) !== before) applied.push('payment state');
  else if (event.type === 'payment_failed') stale.push('payment state');

  billing.facts = facts;
  Object.assign(billing, summarize(facts));
  return { applied: [...new Set(applied)], stale };
}

/** The failures nothing has cleared (and, being monotone, nothing will restore), earliest first, deduplicated. */
function uncleared(facts: BillingFacts): Failure[] {
  const good = facts.lastGoodStandingAt === null ? -Infinity : ms(facts.lastGoodStandingAt);
  const paid = facts.paidThrough === null ? -Infinity : ms(facts.paidThrough);
  const open = facts.failures.filter((f) => (f.unpaidFrom === null ? ms(f.at) > good : ms(f.at) >= good && paid <= ms(f.unpaidFrom)));
  const unique = new Map(open.map((f) => [`${ms(f.at)}|${f.unpaidFrom === null ? '' : ms(f.unpaidFrom)}`, f]));
  return [...unique.values()].sort((a, b) => ms(a.at) - ms(b.at) || (a.unpaidFrom === null ? -1 : b.unpaidFrom === null ? 1 : ms(a.unpaidFrom) - ms(b.unpaidFrom))).slice(0, maxFailures);
}

/** The summary the lifecycle schedules by, from the facts alone. */
export function summarize(facts: BillingFacts): Omit<BillingState, 'facts'> {
  const status = facts.status;
  // Money after the newest ending belongs to a subscription that runs again; in the same second
  // the ending wins (a new subscription's checkout takes longer than that).
  const paidSinceEnd = facts.lastPaidAt !== null && (facts.lastEndedAt === null || ms(facts.lastPaidAt) > ms(facts.lastEndedAt));
  const ended = status !== null && endedStatuses.has(status.value) && !(facts.lastPaidAt !== null && ms(facts.lastPaidAt) > ms(status.at));
  let periodEndsAt = facts.periodEndsAt?.value ?? null;
  if (ended) {
    // Ended or paused: access stops at the earliest of the period, the ending and what was paid for.
    const ends = [periodEndsAt ?? status.at, status.at, ...(facts.paidThrough !== null ? [facts.paidThrough] : [])];
    periodEndsAt = ends.reduce((a, b) => (ms(b) < ms(a) ? b : a));
  }
  return {
    subscribed: paidSinceEnd,
    periodEndsAt,
    plan: facts.plan?.value ?? null,
    cancelAtPeriodEnd: (facts.cancelAtPeriodEnd?.value ?? false) || ended,
    paymentFailedAt: ended ? null : (facts.failures[0]?.at ?? null),
  };
}

/**
 * Facts for a state kept before facts existed (a running workflow's or a continued run's): each
 * known value stamped with the newest event applied, so older events still cannot override it.
 */
export function factsFromSummary(billing: Omit<BillingState, 'facts'>, lastEventCreated: string | null): BillingFacts {
  const at = lastEventCreated ?? new Date(0).toISOString();
  const failing = billing.paymentFailedAt;
  const goodStanding = billing.subscribed ? (failing === null ? at : new Date(0).toISOString()) : null;
  return {
    plan: billing.plan === null ? null : { value: billing.plan, at },
    cancelAtPeriodEnd: { value: billing.cancelAtPeriodEnd, at },
    periodEndsAt: billing.periodEndsAt === null ? null : { value: billing.periodEndsAt, at },
    status: null,
    lastPaidAt: goodStanding,
    paidThrough: billing.subscribed ? billing.periodEndsAt : null,
    lastGoodStandingAt: goodStanding,
    failures: failing === null ? [] : [{ at: failing, unpaidFrom: null }],
    lastEndedAt: null,
  };
}

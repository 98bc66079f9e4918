/**
 * What Berth sells and the stages a customer's life with it goes through: the one definition that
 * the lifecycle workflow, billing, the database schema and the pages derive from. Pure data, no
 * Node built-ins and no I/O, so workflow code imports it too. Stripe price ids are configuration
 * and join these plans in activities/billing/plans.ts.
 */

/** Plans a customer can buy, cheapest first. */
export const planIds = ['starter', 'pro', 'enterprise'] as const;
export type PlanId = (typeof planIds)[number];

export function isPlan(value: unknown): value is PlanId {
  return (planIds as readonly unknown[]).includes(value);
}

/** Where a plan's server may be created: a Hetzner server type in a location. */
export interface ServerCandidate {
  serverType: string;
  location: string;
}

/** What a plan costs, as the billing page shows it. Money in integer minor units, never a float. */
export interface DisplayPrice {
  amountMinor: number;
  /** ISO 4217, lower case as Stripe writes it. */
  currency: string;
  interval: 'month' | 'year';
}

/** One plan: its name, the servers it runs on, how long backups are kept, its price. */
export interface Plan {
  id: PlanId;
  name: string;
  /**
   * Tried in order when a server is created, woken or moved to the plan; the next one is used when
   * Hetzner cannot give one now (availability changes per location). All x86: Hetzner changes a
   * server's type, or creates one from a snapshot, only within one architecture.
   */
  servers: readonly ServerCandidate[];
  /** Days backups are kept after access ended. */
  backupRetentionDays: number;
  displayPrice: DisplayPrice;
}

/** The plans, by id. Product policy: kept in code so a change is reviewed (docs/decisions/015). */
export const plans: Readonly<Record<PlanId, Plan>> = {
  starter: {
    id: 'starter',
    name: 'Starter',
    servers: [
      { serverType: 'cx23', location: 'nbg1' },
      { serverType: 'cx23', location: 'fsn1' },
      { serverType: 'cpx12', location: 'hel1' },
    ],
    backupRetentionDays: 7,
    displayPrice: { amountMinor: 900, currency: 'eur', interval: 'month' },
  },
  pro: {
    id: 'pro',
    name: 'Pro',
    servers: [
      { serverType: 'cx33', location: 'nbg1' },
      { serverType: 'cx33', location: 'fsn1' },
      { serverType: 'cpx32', location: 'hel1' },
    ],
    backupRetentionDays: 30,
    displayPrice: { amountMinor: 1900, currency: 'eur', interval: 'month' },
  },
  enterprise: {
    id: 'enterprise',
    name: 'Enterprise',
    servers: [
      { serverType: 'cx53', location: 'nbg1' },
      { serverType: 'ccx23', location: 'fsn1' },
      { serverType: 'cpx52', location: 'hel1' },
    ],
    backupRetentionDays: 90,
    displayPrice: { amountMinor: 4900, currency: 'eur', interval: 'month' },
  },
};

/** The stages a customer is in, as operators and pages see them, in the order a customer usually meets them. */
export const stages = [
  'awaiting_payment',
  'provisioning',
  'active',
  'idle',
  'past_due',
  'expiring',
  'expired',
  'restoring',
  'purged',
] as const;
export type Stage = (typeof stages)[number];

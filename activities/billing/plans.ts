import { z } from 'zod';
import type { Plan } from '../../db/database.ts';

/** What a plan costs, as the billing page shows it. Money in integer minor units, never a float. */
export interface DisplayPrice {
  amountMinor: number;
  /** ISO 4217, lower case as Stripe writes it. */
  currency: string;
  interval: 'month' | 'year';
}

/** One plan Berth sells: its Stripe price, the server it runs on and how long backups are kept. */
export interface PlanConfig {
  id: Plan;
  name: string;
  stripePriceId: string;
  /** Hetzner server types in order of preference; availability changes, so the worker falls back. */
  serverTypes: readonly string[];
  /** Days backups are kept after the subscription expired. */
  backupRetentionDays: number;
  displayPrice: DisplayPrice;
}

export type Plans = Readonly<Record<Plan, PlanConfig>>;

/** Local price ids: stripe-mock and the local checkout accept any id, production sets real ones. */
export const localPriceIds: Readonly<Record<Plan, string>> = {
  starter: 'price_berth_starter_local',
  pro: 'price_berth_pro_local',
  enterprise: 'price_berth_enterprise_local',
};

const priceId = z.string().regex(/^price_\w+$/, 'must be a Stripe price id (price_...)');

/** The environment variables that name each plan's Stripe price (absent: the local ids above). */
export const planPriceEnvSchema = z.object({
  STRIPE_PRICE_STARTER: priceId.default(localPriceIds.starter),
  STRIPE_PRICE_PRO: priceId.default(localPriceIds.pro),
  STRIPE_PRICE_ENTERPRISE: priceId.default(localPriceIds.enterprise),
});

/**
 * The plans with their Stripe price ids. `prices` comes from planPriceEnvSchema (part of a
 * process's config schema); the rest is product policy, kept in code so it is reviewed.
 */
export function createPlans(prices: z.output<typeof planPriceEnvSchema> = planPriceEnvSchema.parse({})): Plans {
  return {
    starter: {
      id: 'starter',
      name: 'Starter',
      stripePriceId: prices.STRIPE_PRICE_STARTER,
      serverTypes: ['cx23', 'cpx12', 'cax11'],
      backupRetentionDays: 7,
      displayPrice: { amountMinor: 900, currency: 'eur', interval: 'month' },
    },
    pro: {
      id: 'pro',
      name: 'Pro',
      stripePriceId: prices.STRIPE_PRICE_PRO,
      serverTypes: ['cx33', 'cpx22', 'cax21'],
      backupRetentionDays: 30,
      displayPrice: { amountMinor: 1900, currency: 'eur', interval: 'month' },
    },
    enterprise: {
      id: 'enterprise',
      name: 'Enterprise',
      stripePriceId: prices.STRIPE_PRICE_ENTERPRISE,
      serverTypes: ['cx43', 'cpx32', 'ccx13'],
      backupRetentionDays: 90,
      displayPrice: { amountMinor: 4900, currency: 'eur', interval: 'month' },
    },
  };
}

/** The plan a Stripe price id belongs to, or null for a price Berth does not sell. */
export function planForPriceId(plans: Plans, stripePriceId: string): Plan | null {
  for (const plan of Object.values(plans)) if (plan.stripePriceId === stripePriceId) return plan.id;
  return null;
}

export function isPlan(value: unknown): value is Plan {
  return value === 'starter' || value === 'pro' || value === 'enterprise';
}

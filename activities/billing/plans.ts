import { z } from 'zod';
import { isPlan, plans as productPlans, type Plan, type PlanId } from '../../lib/product.ts';

export type { DisplayPrice } from '../../lib/product.ts';
export { isPlan };

/** One plan Berth sells (lib/product.ts) with the Stripe price a checkout charges for it. */
export interface PlanConfig extends Plan {
  stripePriceId: string;
}

export type Plans = Readonly<Record<PlanId, PlanConfig>>;

/** Local price ids: stripe-mock and the local checkout accept any id, production sets real ones. */
export const localPriceIds: Readonly<Record<PlanId, string>> = {
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
 * The plans (lib/product.ts) with their Stripe price ids. `prices` comes from planPriceEnvSchema
 * (part of a process's config schema).
 */
export function createPlans(prices: z.output<typeof planPriceEnvSchema> = planPriceEnvSchema.parse({})): Plans {
  return {
    starter: { ...productPlans.starter, stripePriceId: prices.STRIPE_PRICE_STARTER },
    pro: { ...productPlans.pro, stripePriceId: prices.STRIPE_PRICE_PRO },
    enterprise: { ...productPlans.enterprise, stripePriceId: prices.STRIPE_PRICE_ENTERPRISE },
  };
}

/** The plan a Stripe price id belongs to, or null for a price Berth does not sell. */
export function planForPriceId(plans: Plans, stripePriceId: string): PlanId | null {
  for (const plan of Object.values(plans)) if (plan.stripePriceId === stripePriceId) return plan.id;
  return null;
}

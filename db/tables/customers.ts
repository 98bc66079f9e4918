import type { ColumnType, Insertable, JSONColumnType, Selectable, Updateable } from 'kysely';
import { planIds, stages, type PlanId, type Stage } from '../../lib/product.ts';

/** Plans a customer can buy (lib/product.ts; the schema's CHECK constraint lists them too). */
export const plans = planIds;
export type Plan = PlanId;

/** Lifecycle stages as the customer workflow reports them (lib/product.ts; CHECK constraint in the schema). */
export const customerStages = stages;
export type CustomerStage = Stage;

/**
 * The projection of a customer's lifecycle workflow that pages read. The workflow is the source of
 * truth; its activities write this row so a dashboard needs no Temporal query.
 */
export interface CustomersTable {
  userId: string;
  plan: Plan | null;
  stage: ColumnType<CustomerStage, CustomerStage | undefined, CustomerStage>;
  accessEndsAt: Date | null;
  cancelAtPeriodEnd: ColumnType<boolean, boolean | undefined, boolean>;
  needsAttention: ColumnType<boolean, boolean | undefined, boolean>;
  lastActiveAt: Date | null;
  stripeCustomerId: string | null;
  stripeSubscriptionId: string | null;
  /** The lifecycle workflow's last projection as the pages show it (LifecycleProjection). */
  view: JSONColumnType<Record<string, unknown>, string | undefined, string>;
  /** Workflow time of that projection: older writes are ignored. */
  asOf: Date | null;
  attentionReason: string | null;
  updatedAt: ColumnType<Date, Date | undefined, Date>;
}

export type Customer = Selectable<CustomersTable>;
export type NewCustomer = Insertable<CustomersTable>;
export type CustomerUpdate = Updateable<CustomersTable>;

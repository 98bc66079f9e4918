import { sql } from 'kysely';
import type { Db, Plan } from '../../db/database.ts';
import { customerStages, type CustomerStage } from '../../db/tables/customers.ts';
import type { AuditEntry, BillingActivities, LifecycleProjection, ProjectionActivities } from '../contracts.ts';

/**
 * The database side of the lifecycle: the customers row the pages read, the audit log, and the
 * mark that a billing event took effect. Built from its dependencies; the worker registers it.
 */
export function createProjectionActivities(deps: { db: Db }): ProjectionActivities & BillingActivities {
  const { db } = deps;
  return {
    /** Upserts the customer's row; a write reflecting an older workflow time than the stored one is ignored. */
    async writeProjection(input: LifecycleProjection): Promise<void> {
      if (!(customerStages as readonly string[]).includes(input.stage)) throw new Error(`unknown stage ${input.stage}`);
      const asOf = new Date(input.asOf);
      const row = {
        plan: input.plan as Plan | null,
        stage: input.stage as CustomerStage,
        accessEndsAt: input.accessEndsAt ? new Date(input.accessEndsAt) : null,
        cancelAtPeriodEnd: !input.willRenew && input.plan !== null,
        needsAttention: input.needsAttention,
        attentionReason: input.attentionReason,
        view: JSON.stringify(input),
        asOf,
      };
      await db
        .insertInto('customers')
        .values({ userId: input.customerId, ...row })
        .onConflict((oc) =>
          oc.column('userId').doUpdateSet({ ...row, updatedAt: sql<Date>`now()` })
            .where(sql<boolean>`customers.as_of is null or customers.as_of <= ${asOf}`))
        .execute();
    },

    /** Appends an audit entry once per (customer, time, action), however often the activity is retried. */
    async appendAudit(input: AuditEntry): Promise<void> {
      await db
        .insertInto('auditLog')
        .values({
          actor: input.actor,
          action: input.action,
          subject: `customer:${input.customerId}`,
          details: JSON.stringify({ ...input.details, ...(input.reason ? { reason: input.reason } : {}), at: input.at }),
          idempotencyKey: `${input.customerId}:${input.at}:${input.action}`,
        })
        .onConflict((oc) => oc.column('idempotencyKey').doNothing())
        .execute();
    },

    /** Records that the workflow applied (or knowingly ignored) these billing events. */
    async markEventsProcessed(input: { customerId: string; eventIds: string[]; processedAt: string }): Promise<void> {
      if (input.eventIds.length === 0) return;
      await db
        .updateTable('stripeEvents')
        .set({ processedAt: sql<Date>`coalesce(processed_at, ${new Date(input.processedAt)})` })
        .where('eventId', 'in', input.eventIds)
        .execute();
    },
  };
}

import { sql } from 'kysely';
import type { Customer, CustomerStage, CustomerUpdate, Db } from '../database.ts';

export type CustomerProjection = Omit<CustomerUpdate, 'userId' | 'updatedAt'>;

/**
 * Writes the lifecycle projection for a customer: inserts the row or updates only the given fields.
 * Activities of the customer's workflow call this; the workflow orders the writes.
 */
export async function upsertCustomer(db: Db, userId: string, projection: CustomerProjection): Promise<Customer> {
  const changes = { ...projection, updatedAt: sql<Date>`now()` };
  return db
    .insertInto('customers')
    .values({ userId, ...projection })
    .onConflict((oc) => oc.column('userId').doUpdateSet(changes))
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function findCustomer(db: Db, userId: string): Promise<Customer | undefined> {
  return db.selectFrom('customers').selectAll().where('userId', '=', userId).executeTakeFirst();
}

export async function findCustomerByStripeId(db: Db, stripeCustomerId: string): Promise<Customer | undefined> {
  return db.selectFrom('customers').selectAll().where('stripeCustomerId', '=', stripeCustomerId).executeTakeFirst();
}

export async function listCustomersByStage(db: Db, stage: CustomerStage, limit = 100): Promise<Customer[]> {
  return db.selectFrom('customers').selectAll().where('stage', '=', stage).orderBy('updatedAt', 'desc').limit(limit).execute();
}

/** Customers an operator should look at. */
export async function listCustomersNeedingAttention(db: Db, limit = 100): Promise<Customer[]> {
  return db.selectFrom('customers').selectAll().where('needsAttention', '=', true).orderBy('updatedAt', 'desc').limit(limit).execute();
}

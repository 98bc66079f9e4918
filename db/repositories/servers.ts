import type { Db, Server, ServerStatus } from '../database.ts';

export interface ServerRecord {
  userId: string;
  providerId: number;
  name: string;
  labels: Record<string, string>;
  ipv4: string | null;
  serverType: string;
  location: string;
  status: ServerStatus;
  hostKeyFingerprint: string | null;
}

/**
 * Records a server created at the provider. Idempotent on the provider id (a retried activity
 * records the same server again: the row is refreshed, not duplicated). A second live server for
 * the same user violates servers_one_live_per_user and throws.
 */
export async function recordServer(db: Db, server: ServerRecord): Promise<Server> {
  const values = { ...server, labels: JSON.stringify(server.labels) };
  const { userId: _userId, providerId: _providerId, ...refresh } = values;
  return db
    .insertInto('servers')
    .values(values)
    .onConflict((oc) => oc.column('providerId').doUpdateSet(refresh))
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** The user's server that is not deleted, if any (there is at most one). */
export async function findLiveServer(db: Db, userId: string): Promise<Server | undefined> {
  return db.selectFrom('servers').selectAll().where('userId', '=', userId).where('deletedAt', 'is', null).executeTakeFirst();
}

export async function findServerByProviderId(db: Db, providerId: number): Promise<Server | undefined> {
  return db.selectFrom('servers').selectAll().where('providerId', '=', providerId).executeTakeFirst();
}

export async function setServerStatus(db: Db, id: string, status: ServerStatus, ipv4?: string | null): Promise<void> {
  await db
    .updateTable('servers')
    .set(ipv4 === undefined ? { status } : { status, ipv4 })
    .where('id', '=', id)
    .execute();
}

/** Marks the server deleted (first deletion time wins). */
export async function markServerDeleted(db: Db, id: string, at: Date = new Date()): Promise<void> {
  await db.updateTable('servers').set({ deletedAt: at }).where('id', '=', id).where('deletedAt', 'is', null).execute();
}

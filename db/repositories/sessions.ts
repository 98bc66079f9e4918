import type { Db, Session, User } from '../database.ts';

export async function createSession(db: Db, input: { userId: string; tokenHash: string; expiresAt: Date }): Promise<Session> {
  return db.insertInto('sessions').values(input).returningAll().executeTakeFirstOrThrow();
}

/** The live session with this token hash and its user; undefined if unknown or expired at `now`. */
export async function findLiveSession(
  db: Db,
  tokenHash: string,
  now: Date = new Date(),
): Promise<{ session: Session; user: User } | undefined> {
  const session = await db
    .selectFrom('sessions')
    .selectAll()
    .where('tokenHash', '=', tokenHash)
    .where('expiresAt', '>', now)
    .executeTakeFirst();
  if (!session) return undefined;
  const user = await db.selectFrom('users').selectAll().where('id', '=', session.userId).executeTakeFirstOrThrow();
  return { session, user };
}

/** Records activity, and optionally slides the expiry forward. */
export async function touchSession(db: Db, id: string, at: Date = new Date(), expiresAt?: Date): Promise<void> {
  await db
    .updateTable('sessions')
    .set(expiresAt ? { lastSeenAt: at, expiresAt } : { lastSeenAt: at })
    .where('id', '=', id)
    .execute();
}

export async function deleteSession(db: Db, id: string): Promise<void> {
  await db.deleteFrom('sessions').where('id', '=', id).execute();
}

/** Signs a user out everywhere (e.g. after a password change). */
export async function deleteSessionsOfUser(db: Db, userId: string): Promise<number> {
  const result = await db.deleteFrom('sessions').where('userId', '=', userId).executeTakeFirst();
  return Number(result.numDeletedRows);
}

export async function deleteExpiredSessions(db: Db, now: Date = new Date()): Promise<number> {
  const result = await db.deleteFrom('sessions').where('expiresAt', '<=', now).executeTakeFirst();
  return Number(result.numDeletedRows);
}

import type { Db, Session, User } from '../database.ts';

export async function createSession(db: Db, input: { userId: string; tokenHash: string; expiresAt: Date; at?: Date }): Promise<Session> {
  const at = input.at ?? new Date();
  return db.insertInto('sessions')
    .values({ userId: input.userId, tokenHash: input.tokenHash, expiresAt: input.expiresAt, createdAt: at, lastSeenAt: at, authenticatedAt: at })
    .returningAll().executeTakeFirstOrThrow();
}

/**
 * The live session with this token hash and its user: undefined if unknown, past its absolute
 * expiry, or idle (no request) for `idleMs` or longer at `now`.
 */
export async function findLiveSession(
  db: Db,
  tokenHash: string,
  now: Date = new Date(),
  idleMs = Number.POSITIVE_INFINITY,
): Promise<{ session: Session; user: User } | undefined> {
  const session = await db
    .selectFrom('sessions')
    .selectAll()
    .where('tokenHash', '=', tokenHash)
    .where('expiresAt', '>', now)
    .executeTakeFirst();
  if (!session || now.getTime() - session.lastSeenAt.getTime() >= idleMs) return undefined;
  const user = await db.selectFrom('users').selectAll().where('id', '=', session.userId).executeTakeFirstOrThrow();
  return { session, user };
}

/** The session by id if it is live at `now` (same rules as findLiveSession). */
export async function findLiveSessionById(db: Db, id: string, now: Date = new Date(), idleMs = Number.POSITIVE_INFINITY): Promise<Session | undefined> {
  const session = await db.selectFrom('sessions').selectAll().where('id', '=', id).where('expiresAt', '>', now).executeTakeFirst();
  return session && now.getTime() - session.lastSeenAt.getTime() < idleMs ? session : undefined;
}

/** Records activity (the idle timeout counts from the last one). */
export async function touchSession(db: Db, id: string, at: Date = new Date()): Promise<void> {
  await db.updateTable('sessions').set({ lastSeenAt: at }).where('id', '=', id).execute();
}

/** The password was just typed again on this session. */
export async function markSessionAuthenticated(db: Db, id: string, at: Date = new Date()): Promise<void> {
  await db.updateTable('sessions').set({ authenticatedAt: at, lastSeenAt: at }).where('id', '=', id).execute();
}

export async function deleteSession(db: Db, id: string): Promise<void> {
  await db.deleteFrom('sessions').where('id', '=', id).execute();
}

/** Signs a user out everywhere (e.g. after a password change); returns the ended sessions' ids. */
export async function deleteSessionsOfUser(db: Db, userId: string): Promise<string[]> {
  const rows = await db.deleteFrom('sessions').where('userId', '=', userId).returning('id').execute();
  return rows.map((r) => r.id);
}

export async function deleteExpiredSessions(db: Db, now: Date = new Date()): Promise<number> {
  const result = await db.deleteFrom('sessions').where('expiresAt', '<=', now).executeTakeFirst();
  return Number(result.numDeletedRows);
}

import { createHash, randomBytes } from 'node:crypto';
import type { Db, Session, User } from '../../db/database.ts';
import { createSession, deleteSession, findLiveSession, markSessionAuthenticated, touchSession } from '../../db/repositories/sessions.ts';

/**
 * `__Host-`: the browser keeps it only if it is Secure, has Path=/ and no Domain, so no other host
 * (a sibling subdomain) can set or overwrite it. Browsers treat http://localhost as secure, so the
 * same cookie works locally.
 */
export const sessionCookieName = '__Host-berth_session';

/** How long sessions last: ASVS 5.0 V7.3 (idle and absolute limits) and V7.5 (re-authentication). */
export interface SessionPolicy {
  /** A session ends this long after its last request. */
  idleMs: number;
  /** A session ends this long after sign-in, however active. */
  lifetimeMs: number;
  /** Sensitive actions need the password typed within this long. */
  reauthMs: number;
}

/** Only a hash of the token is stored: a leaked sessions table opens no account. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

function cookie(value: string, maxAgeSeconds: number): string {
  return [`${sessionCookieName}=${value}`, 'Path=/', 'HttpOnly', 'Secure', 'SameSite=Lax', `Max-Age=${maxAgeSeconds}`].join('; ');
}

export function readSessionToken(cookieHeader: string | null): string | null {
  for (const part of (cookieHeader ?? '').split(';')) {
    const [name, ...rest] = part.trim().split('=');
    if (name === sessionCookieName) return rest.join('=') || null;
  }
  return null;
}

/** Starts a session for a user who just typed their password; returns the Set-Cookie header value. */
export async function startSession(db: Db, userId: string, policy: SessionPolicy, now = new Date()): Promise<string> {
  const token = randomBytes(32).toString('base64url');
  await createSession(db, { userId, tokenHash: hashToken(token), expiresAt: new Date(now.getTime() + policy.lifetimeMs), at: now });
  return cookie(token, Math.ceil(policy.lifetimeMs / 1000));
}

/**
 * The live session of a request and its user, or null (no cookie, unknown, expired, idle too long).
 * A request counts as activity: the idle clock restarts, written at most every minute (or a quarter
 * of the idle timeout, when shorter) to keep writes down.
 */
export async function sessionOfRequest(db: Db, cookieHeader: string | null, policy: SessionPolicy, now = new Date()): Promise<{ session: Session; user: User } | null> {
  const token = readSessionToken(cookieHeader);
  if (!token) return null;
  const found = await findLiveSession(db, hashToken(token), now, policy.idleMs);
  if (!found) return null;
  if (now.getTime() - found.session.lastSeenAt.getTime() > Math.min(60_000, policy.idleMs / 4)) await touchSession(db, found.session.id, now);
  return found;
}

/** Whether the session's password was typed recently enough for a sensitive action. */
export function recentlyAuthenticated(session: Pick<Session, 'authenticatedAt'>, policy: SessionPolicy, now = new Date()): boolean {
  return now.getTime() - session.authenticatedAt.getTime() < policy.reauthMs;
}

/** The password was typed again on this session: sensitive actions are open for another window. */
export async function refreshAuthentication(db: Db, sessionId: string, now = new Date()): Promise<void> {
  await markSessionAuthenticated(db, sessionId, now);
}

/** Ends the request's session (if any); returns its id and the Set-Cookie value that clears the cookie. */
export async function endSession(db: Db, cookieHeader: string | null): Promise<{ sessionId: string | null; setCookie: string }> {
  const token = readSessionToken(cookieHeader);
  let sessionId: string | null = null;
  if (token) {
    const found = await findLiveSession(db, hashToken(token));
    if (found) {
      await deleteSession(db, found.session.id);
      sessionId = found.session.id;
    }
  }
  return { sessionId, setCookie: cookie('', 0) };
}

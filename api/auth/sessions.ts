import { createHash, randomBytes } from 'node:crypto';
import type { Db, User } from '../../db/database.ts';
import { createSession, deleteSession, findLiveSession, touchSession } from '../../db/repositories/sessions.ts';

export const sessionCookieName = 'berth_session';
const sessionDays = 30;
const dayMs = 24 * 60 * 60 * 1000;

/** Only a hash of the token is stored: a leaked sessions table opens no account. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

function cookie(value: string, maxAgeSeconds: number, secure: boolean): string {
  return [`${sessionCookieName}=${value}`, 'Path=/', 'HttpOnly', 'SameSite=Lax', `Max-Age=${maxAgeSeconds}`, ...(secure ? ['Secure'] : [])].join('; ');
}

export function readSessionToken(cookieHeader: string | null): string | null {
  for (const part of (cookieHeader ?? '').split(';')) {
    const [name, ...rest] = part.trim().split('=');
    if (name === sessionCookieName) return rest.join('=') || null;
  }
  return null;
}

/** Starts a session for a user; returns the Set-Cookie header value. */
export async function startSession(db: Db, userId: string, secure: boolean, now = new Date()): Promise<string> {
  const token = randomBytes(32).toString('base64url');
  await createSession(db, { userId, tokenHash: hashToken(token), expiresAt: new Date(now.getTime() + sessionDays * dayMs) });
  return cookie(token, sessionDays * 24 * 60 * 60, secure);
}

/** The signed-in user of a request, sliding the session's expiry forward at most once a day. */
export async function userOfRequest(db: Db, cookieHeader: string | null, now = new Date()): Promise<User | null> {
  const token = readSessionToken(cookieHeader);
  if (!token) return null;
  const found = await findLiveSession(db, hashToken(token), now);
  if (!found) return null;
  if (now.getTime() - found.session.lastSeenAt.getTime() > dayMs) {
    await touchSession(db, found.session.id, now, new Date(now.getTime() + sessionDays * dayMs));
  }
  return found.user;
}

/** Ends the request's session (if any); returns the Set-Cookie header value that clears the cookie. */
export async function endSession(db: Db, cookieHeader: string | null, secure: boolean): Promise<string> {
  const token = readSessionToken(cookieHeader);
  if (token) {
    const found = await findLiveSession(db, hashToken(token));
    if (found) await deleteSession(db, found.session.id);
  }
  return cookie('', 0, secure);
}

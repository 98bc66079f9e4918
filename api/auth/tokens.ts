import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Signed, expiring links for email verification and password reset. Nothing is stored: the token
 * carries purpose, user and expiry, signed with SESSION_SECRET. A reset token is also bound to the
 * current password hash, so it stops working once the password changed (used once).
 */
export type TokenPurpose = 'verify-email' | 'password-reset';

const fingerprint = (value: string) => createHash('sha256').update(value).digest('base64url').slice(0, 16);

export function signToken(secret: string, purpose: TokenPurpose, userId: string, expiresAt: Date, bindTo = ''): string {
  const payload = [purpose, userId, expiresAt.getTime(), fingerprint(bindTo)].join('.');
  const mac = createHmac('sha256', secret).update(payload).digest('base64url');
  return `${Buffer.from(payload).toString('base64url')}.${mac}`;
}

/** The user id the token was issued for, or null if it is forged, for another purpose, expired or used. */
export async function verifyToken(secret: string, purpose: TokenPurpose, token: string,
  bindTo: (userId: string) => Promise<string> = async () => '', now = new Date()): Promise<string | null> {
  const [encoded, mac] = token.split('.');
  if (!encoded || !mac) return null;
  const payload = Buffer.from(encoded, 'base64url').toString();
  const expected = createHmac('sha256', secret).update(payload).digest();
  const given = Buffer.from(mac, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
  const [p, userId, expires, bound] = payload.split('.');
  if (p !== purpose || !userId || !(Number(expires) >= now.getTime())) return null;
  return fingerprint(await bindTo(userId)) === bound ? userId : null;
}

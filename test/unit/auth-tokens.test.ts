import { expect, test } from 'vitest';
import { signToken, verifyToken } from '../../api/auth/tokens.ts';

const secret = 'a test secret of at least thirty-two chars';
const later = new Date(Date.now() + 60_000);

test('a signed link opens for its user, its purpose and until it expires', async () => {
  const token = signToken(secret, 'verify-email', 'user-1', later);
  expect(await verifyToken(secret, 'verify-email', token)).toBe('user-1');
  expect(await verifyToken(secret, 'password-reset', token)).toBeNull();
  expect(await verifyToken('another secret, also long enough....', 'verify-email', token)).toBeNull();
  expect(await verifyToken(secret, 'verify-email', token, async () => '', new Date(later.getTime() + 1))).toBeNull();
});

test('a tampered or truncated link opens nothing', async () => {
  const token = signToken(secret, 'verify-email', 'user-1', later);
  const [payload, mac] = token.split('.');
  const forged = Buffer.from(Buffer.from(payload!, 'base64url').toString().replace('user-1', 'user-2')).toString('base64url');
  expect(await verifyToken(secret, 'verify-email', `${forged}.${mac}`)).toBeNull();
  expect(await verifyToken(secret, 'verify-email', payload!)).toBeNull();
  expect(await verifyToken(secret, 'verify-email', '')).toBeNull();
});

test('a reset link stops working once the password changed (it is used once)', async () => {
  const token = signToken(secret, 'password-reset', 'user-1', later, 'scrypt$old-hash');
  expect(await verifyToken(secret, 'password-reset', token, async () => 'scrypt$old-hash')).toBe('user-1');
  expect(await verifyToken(secret, 'password-reset', token, async () => 'scrypt$new-hash')).toBeNull();
});

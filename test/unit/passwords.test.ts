import { randomBytes, scryptSync } from 'node:crypto';
import { expect, test } from 'vitest';
import { createHashingQueue, hashPassword, HashingBusy, verifyAgainstNothing, verifyPassword } from '../../api/auth/passwords.ts';

test('passwords are hashed with argon2id at OWASP\'s parameters, salted, and verified', async () => {
  const hash = await hashPassword('correct horse battery staple');
  expect(hash).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
  expect(await hashPassword('correct horse battery staple')).not.toBe(hash);
  expect(await verifyPassword('correct horse battery staple', hash)).toEqual({ valid: true, needsRehash: false });
  expect(await verifyPassword('correct horse battery stapler', hash)).toEqual({ valid: false, needsRehash: false });
  // NFKC: the same password typed with a composed or a decomposed é.
  expect((await verifyPassword('caf\u0065\u0301 au lait', await hashPassword('caf\u00e9 au lait'))).valid).toBe(true);
});

test('an older scrypt hash still verifies, and asks to be rehashed; weaker argon2 settings too', async () => {
  const salt = randomBytes(16);
  const key = scryptSync('old password 123', salt, 32, { N: 1 << 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 });
  const legacy = ['scrypt', 1 << 15, 8, 1, salt.toString('base64url'), key.toString('base64url')].join('$');
  expect(await verifyPassword('old password 123', legacy)).toEqual({ valid: true, needsRehash: true });
  expect(await verifyPassword('wrong', legacy)).toEqual({ valid: false, needsRehash: true });
  expect(await verifyPassword('anything', 'not a hash')).toEqual({ valid: false, needsRehash: true });
  const weak = (await hashPassword('x')).replace('m=19456', 'm=4096');
  expect((await verifyPassword('x', weak)).needsRehash).toBe(true);
  expect(await verifyAgainstNothing('anything')).toBe(false);
});

test('the hashing queue runs a bounded number at once and refuses past a bounded wait list', async () => {
  const queue = createHashingQueue({ concurrency: 2, maxWaiting: 3 });
  let running = 0;
  let most = 0;
  const releases: (() => void)[] = [];
  const job = () => queue.run(async () => {
    running++;
    most = Math.max(most, running);
    await new Promise<void>((r) => releases.push(r));
    running--;
  });
  const accepted = Array.from({ length: 5 }, job);
  await expect(job()).rejects.toBeInstanceOf(HashingBusy);
  expect(queue.load).toEqual({ running: 2, waiting: 3 });
  while (releases.length > 0 || queue.load.running > 0) {
    releases.shift()?.();
    await new Promise((r) => setTimeout(r, 1));
  }
  await Promise.all(accepted);
  expect(most).toBe(2);
  expect(queue.load).toEqual({ running: 0, waiting: 0 });
});

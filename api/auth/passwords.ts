/**
 * Password hashing: argon2id at OWASP's first recommended setting (m = 19 MiB, t = 2, p = 1; OWASP
 * Password Storage Cheat Sheet), through @node-rs/argon2 (an N-API addon: safe on Node 24.19+, where
 * node-argon2's prebuilt binary crashes; docs/decisions/). Hashes from before (scrypt) still verify
 * and are reported as needing a rehash, which the next sign-in does.
 *
 * The work runs on libuv's thread pool, never on the request thread, and through one bounded queue:
 * at most `concurrency` hashes at once and `maxWaiting` waiting; past that a caller gets HashingBusy
 * at once, so a flood of sign-ins cannot starve the process of threads or memory (19 MiB each).
 */
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { hash as argon2Hash, verify as argon2Verify, type Algorithm } from '@node-rs/argon2';

export const argon2Params = { memoryCost: 19_456, timeCost: 2, parallelism: 1, outputLen: 32, algorithm: 2 as Algorithm } as const;
const currentPrefix = `$argon2id$v=19$m=${argon2Params.memoryCost},t=${argon2Params.timeCost},p=${argon2Params.parallelism}$`;

/** Too many password checks are waiting: answer "busy, try again" rather than queue without end. */
export class HashingBusy extends Error {
  override name = 'HashingBusy';
}

export interface HashingQueue {
  run<T>(work: () => Promise<T>): Promise<T>;
  /** Hashes running and waiting now. */
  readonly load: { running: number; waiting: number };
}

/** A semaphore with a bounded wait list. */
export function createHashingQueue(opts: { concurrency: number; maxWaiting: number }): HashingQueue {
  let running = 0;
  const waiting: (() => void)[] = [];
  return {
    async run(work) {
      if (running >= opts.concurrency) {
        if (waiting.length >= opts.maxWaiting) throw new HashingBusy('too many password checks are waiting');
        await new Promise<void>((resolve) => waiting.push(resolve));
      } else {
        running++;
      }
      try {
        return await work();
      } finally {
        const next = waiting.shift();
        if (next) next();
        else running--;
      }
    },
    get load() {
      return { running, waiting: waiting.length };
    },
  };
}

/** The process's queue: two hashes at once leave the rest of libuv's four threads to files and DNS. */
export const passwordQueue = createHashingQueue({ concurrency: 2, maxWaiting: 64 });

const normalise = (password: string) => password.normalize('NFKC');

/** An argon2id hash in PHC form (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`). */
export function hashPassword(password: string, queue: HashingQueue = passwordQueue): Promise<string> {
  return queue.run(() => argon2Hash(normalise(password), argon2Params));
}

/**
 * Checks a password against a stored hash (argon2id, or a legacy scrypt one) in constant time.
 * `needsRehash` when the stored hash is not argon2id at today's parameters. A malformed hash is
 * simply not valid.
 */
export async function verifyPassword(password: string, stored: string, queue: HashingQueue = passwordQueue): Promise<{ valid: boolean; needsRehash: boolean }> {
  if (stored.startsWith('$argon2')) {
    const valid = await queue.run(() => argon2Verify(stored, normalise(password))).catch((err: unknown) => {
      if (err instanceof HashingBusy) throw err;
      return false;
    });
    return { valid, needsRehash: !stored.startsWith(currentPrefix) };
  }
  if (stored.startsWith('scrypt$')) return { valid: await queue.run(() => verifyScrypt(password, stored)), needsRehash: true };
  return { valid: false, needsRehash: true };
}

let dummy: Promise<string> | undefined;

/**
 * Spends what checking a real password costs, for an address with no account: the answer then
 * takes as long whether or not the account exists.
 */
export async function verifyAgainstNothing(password: string, queue: HashingQueue = passwordQueue): Promise<false> {
  dummy ??= argon2Hash(randomBytes(16).toString('base64'), argon2Params);
  await verifyPassword(password, await dummy, queue);
  return false;
}

/** Legacy `scrypt$N$r$p$salt$hash` hashes (Berth's first scheme), checked until each is rehashed. */
function verifyScrypt(password: string, stored: string): Promise<boolean> {
  const [, n, r, p, salt, hash] = stored.split('$');
  if (!n || !r || !p || !salt || !hash) return Promise.resolve(false);
  const expected = Buffer.from(hash, 'base64url');
  const opts: ScryptOptions = { N: Number(n), r: Number(r), p: Number(p), maxmem: 64 * 1024 * 1024 };
  return new Promise((resolve) => {
    scrypt(normalise(password), Buffer.from(salt, 'base64url'), expected.length, opts, (err, key) => {
      resolve(!err && key.length === expected.length && timingSafeEqual(key, expected));
    });
  });
}

/**
 * The email_log table as the send activity uses it: one row per idempotency key, claimed before a
 * mail goes out and marked once it went. db/ owns the table; these are the mail side's queries.
 */
import { sql } from 'kysely';
import type { Db, EmailLogEntry, EmailProvider } from '../../db/database.ts';

/** First half of the two-key advisory lock: keeps mail locks apart from any other advisory locks. */
const mailLockClass = 0x4d41494c; // "MAIL"

/** Another attempt at the same mail holds its lock right now (a timed-out attempt still running). */
export class MailInFlightError extends Error {
  override name = 'MailInFlightError';
}

/** What a first attempt records about the mail it is about to send. */
export type NewClaim = Pick<EmailLogEntry, 'idempotencyKey' | 'userId' | 'kind' | 'recipient' | 'subject'> & { provider: EmailProvider };

/** Row operations on one key's email_log row; inside withKeyLock they run on the locked connection. */
export interface EmailLogOps {
  /** Inserts a 'sending' row unless the key exists; returns the row either way. */
  claim(entry: NewClaim): Promise<{ entry: EmailLogEntry; claimed: boolean }>;
  /** A 'failed' row back to 'sending' for another try: attempts + 1, claimed_at now. */
  reclaim(idempotencyKey: string, provider: EmailProvider): Promise<void>;
  markSent(idempotencyKey: string, providerId: string | null): Promise<void>;
  /** The provider refused the mail: nothing went out, a later attempt may send it. */
  markFailed(idempotencyKey: string, error: string): Promise<void>;
  /** The hand-over failed with an unknown outcome: stays 'sending', with the reason recorded. */
  noteUnknown(idempotencyKey: string, error: string): Promise<void>;
  get(idempotencyKey: string): Promise<EmailLogEntry | undefined>;
}

export interface EmailLogStore {
  /**
   * Runs `fn` holding a session advisory lock on the key, so two attempts at one mail never overlap.
   * `fn` gets the row operations bound to the same connection: with a pool of N and N concurrent
   * sends, queries that needed a second connection would wait forever. PostgreSQL drops the lock
   * with the connection, so a crashed worker does not leave it behind. Throws MailInFlightError at
   * once if another attempt holds it.
   */
  withKeyLock<T>(idempotencyKey: string, fn: (ops: EmailLogOps) => Promise<T>): Promise<T>;
  get(idempotencyKey: string): Promise<EmailLogEntry | undefined>;
}

/** The store on Berth's database (a `createDb` instance: camelCase names, snake_case columns). */
export function createEmailLogStore(db: Db): EmailLogStore {
  return {
    async withKeyLock(idempotencyKey, fn) {
      return db.connection().execute(async (conn) => {
        const { rows } = await sql<{ locked: boolean }>`select pg_try_advisory_lock(${mailLockClass}, hashtext(${idempotencyKey})) as locked`.execute(conn);
        if (!rows[0]?.locked) throw new MailInFlightError(`another attempt is sending the mail ${idempotencyKey} right now`);
        try {
          return await fn(emailLogOps(conn));
        } finally {
          await sql`select pg_advisory_unlock(${mailLockClass}, hashtext(${idempotencyKey}))`.execute(conn);
        }
      });
    },
    get: (idempotencyKey) => emailLogOps(db).get(idempotencyKey),
  };
}

/** The row operations on `db` (the pool, a pinned connection or a transaction). */
export function emailLogOps(db: Db): EmailLogOps {
  return {
    async claim(entry) {
      const inserted = await db
        .insertInto('emailLog')
        .values({ ...entry, status: 'sending' })
        .onConflict((oc) => oc.column('idempotencyKey').doNothing())
        .returningAll()
        .executeTakeFirst();
      if (inserted) return { entry: inserted, claimed: true };
      const existing = await db.selectFrom('emailLog').selectAll().where('idempotencyKey', '=', entry.idempotencyKey).executeTakeFirstOrThrow();
      return { entry: existing, claimed: false };
    },

    async reclaim(idempotencyKey, provider) {
      await db
        .updateTable('emailLog')
        .set((eb) => ({ status: 'sending', provider, error: null, attempts: eb('attempts', '+', 1), claimedAt: sql<Date>`now()` }))
        .where('idempotencyKey', '=', idempotencyKey)
        .where('status', '=', 'failed')
        .execute();
    },

    async markSent(idempotencyKey, providerId) {
      await db
        .updateTable('emailLog')
        .set({ status: 'sent', providerId, error: null, sentAt: sql<Date>`now()` })
        .where('idempotencyKey', '=', idempotencyKey)
        .execute();
    },

    async markFailed(idempotencyKey, error) {
      await db.updateTable('emailLog').set({ status: 'failed', error }).where('idempotencyKey', '=', idempotencyKey).where('status', '!=', 'sent').execute();
    },

    async noteUnknown(idempotencyKey, error) {
      await db.updateTable('emailLog').set({ error }).where('idempotencyKey', '=', idempotencyKey).where('status', '=', 'sending').execute();
    },

    async get(idempotencyKey) {
      return db.selectFrom('emailLog').selectAll().where('idempotencyKey', '=', idempotencyKey).executeTakeFirst();
    },
  };
}

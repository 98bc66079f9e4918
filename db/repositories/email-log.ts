import { sql } from 'kysely';
import type { Db, EmailLogEntry, EmailProvider } from '../database.ts';

export type EmailClaim =
  /** This caller owns the key now and should send. */
  | { claimed: true; entry: EmailLogEntry }
  /** Another attempt owns the key or already sent it: do not send. */
  | { claimed: false; entry: EmailLogEntry };

/**
 * Claims an idempotency key before sending, so each notification goes out once (invariant 3).
 * A new key is claimed; a key whose last send failed is claimed again (attempts + 1); a key that is
 * sent, or being sent, is not. A key stuck in 'sending' since before `reclaimSendingBefore`
 * (a worker died mid-send) may be reclaimed when the caller passes that time.
 */
export async function claimEmail(
  db: Db,
  input: { idempotencyKey: string; userId: string | null; kind: string; recipient: string; subject: string; provider: EmailProvider },
  opts: { reclaimSendingBefore?: Date } = {},
): Promise<EmailClaim> {
  const inserted = await db
    .insertInto('emailLog')
    .values({ ...input, status: 'sending' })
    .onConflict((oc) => oc.column('idempotencyKey').doNothing())
    .returningAll()
    .executeTakeFirst();
  if (inserted) return { claimed: true, entry: inserted };

  const reclaimed = await db
    .updateTable('emailLog')
    .set({
      status: 'sending',
      error: null,
      provider: input.provider,
      attempts: sql<number>`attempts + 1`,
      claimedAt: sql<Date>`now()`,
    })
    .where('idempotencyKey', '=', input.idempotencyKey)
    .where((eb) => {
      const failed = eb('status', '=', 'failed');
      const before = opts.reclaimSendingBefore;
      return before ? eb.or([failed, eb.and([eb('status', '=', 'sending'), eb('claimedAt', '<', before)])]) : failed;
    })
    .returningAll()
    .executeTakeFirst();
  if (reclaimed) return { claimed: true, entry: reclaimed };

  const existing = await db.selectFrom('emailLog').selectAll().where('idempotencyKey', '=', input.idempotencyKey).executeTakeFirstOrThrow();
  return { claimed: false, entry: existing };
}

export async function markEmailSent(db: Db, idempotencyKey: string, providerId: string | null, at: Date = new Date()): Promise<void> {
  await db
    .updateTable('emailLog')
    .set({ status: 'sent', providerId, sentAt: at, error: null })
    .where('idempotencyKey', '=', idempotencyKey)
    .execute();
}

/** Records a failed send; the next claim of the key may try again. `error` must hold no secret. */
export async function markEmailFailed(db: Db, idempotencyKey: string, error: string): Promise<void> {
  await db
    .updateTable('emailLog')
    .set({ status: 'failed', error: error.slice(0, 2000) })
    .where('idempotencyKey', '=', idempotencyKey)
    .where('status', '<>', 'sent')
    .execute();
}

export async function findEmailByKey(db: Db, idempotencyKey: string): Promise<EmailLogEntry | undefined> {
  return db.selectFrom('emailLog').selectAll().where('idempotencyKey', '=', idempotencyKey).executeTakeFirst();
}

/** A user's mail, newest first. */
export async function listEmailsOfUser(db: Db, userId: string, limit = 50): Promise<EmailLogEntry[]> {
  return db.selectFrom('emailLog').selectAll().where('userId', '=', userId).orderBy('createdAt', 'desc').limit(limit).execute();
}

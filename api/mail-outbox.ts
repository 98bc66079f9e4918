/**
 * Account mails (verification, password reset, "you already have an account") leave the request
 * path: a request only writes the mail to mail_outbox, sealed with the master key because its links
 * carry tokens, and answers. A sender in each web process sends what is due — one row at a time,
 * locked with SKIP LOCKED so processes never send the same row — through the same send-mail activity
 * code as the worker (email_log keeps each mail to one delivery). A crash before the send leaves the
 * row for the next try; a failed send is tried again later, with growing pauses, up to `maxAttempts`.
 *
 * A mail can also be deferred: the request queues what was asked (a reset for an address) and the
 * sender decides whether a mail goes and composes it, so the request does the same work whether or
 * not the address has an account.
 */
import { sql } from 'kysely';
import type { Db } from '../db/database.ts';
import type { Logger } from '../lib/log.ts';
import { decryptSecret, encryptSecret, type MasterKeys } from '../lib/secrets.ts';
import type { SendMailInput } from '../activities/mail/send.ts';
import type { MailKind } from '../activities/mail/registry.ts';
import { errorMessage } from '../lib/errors.ts';

/** A mail decided when it is sent: the composer named `deferred` turns `input` into the mail, or into none. */
export interface DeferredMail {
  deferred: string;
  input: Record<string, string>;
}

/** Composes a deferred mail from its input at sending time; null: no mail goes. */
export type MailComposer = (input: Record<string, string>) => Promise<SendMailInput | null>;

export interface MailOutbox {
  /** Queues a mail (or a deferred one); the web process sends it within moments. */
  enqueue<K extends MailKind>(mail: SendMailInput<K> | DeferredMail): Promise<void>;
  /** Sends every mail that is due now; returns how many were sent (tests, and the sender's loop). */
  drain(): Promise<number>;
  stop(): Promise<void>;
}

/** How long after queuing a mail this process sends it (the request's answer goes first). */
const sendDelayMs = 250;

/** The AAD every outbox payload is sealed with: a sealed row cannot be passed off as another kind of secret. */
export const outboxContext = 'mail-outbox';

export function createMailOutbox(deps: {
  db: Db;
  masterKeys: MasterKeys;
  sendMail: (mail: SendMailInput) => Promise<unknown>;
  log: Logger;
  /** The composers of deferred mails, by name. */
  composers?: Readonly<Record<string, MailComposer>>;
  /** How often the sender looks for due mail another process queued (default 2 s). */
  pollMs?: number;
  maxAttempts?: number;
}): MailOutbox {
  const maxAttempts = deps.maxAttempts ?? 8;
  let stopped = false;
  let running: Promise<number> | undefined;
  let again = false;

  /** Sends one due row; false when none is due. */
  async function sendOne(): Promise<boolean> {
    return deps.db.transaction().execute(async (trx) => {
      const row = await trx.selectFrom('mailOutbox').selectAll().where('notBefore', '<=', sql<Date>`now()`)
        .orderBy('createdAt').limit(1).forUpdate().skipLocked().executeTakeFirst();
      if (!row) return false;
      let item: SendMailInput | DeferredMail;
      try {
        item = JSON.parse(decryptSecret(deps.masterKeys, { ciphertext: row.payload, keyId: row.keyId }, outboxContext).toString('utf8')) as SendMailInput | DeferredMail;
      } catch (err) {
        deps.log.error({ id: row.id, err: errorMessage(err) }, 'mail outbox: a queued mail cannot be opened; dropped');
        await trx.deleteFrom('mailOutbox').where('id', '=', row.id).execute();
        return true;
      }
      const kind = 'deferred' in item ? item.deferred : item.kind;
      try {
        const mail = 'deferred' in item ? await compose(item) : item;
        if (mail) await deps.sendMail(mail);
        await trx.deleteFrom('mailOutbox').where('id', '=', row.id).execute();
      } catch (err) {
        const attempts = row.attempts + 1;
        const reason = errorMessage(err);
        if (attempts >= maxAttempts) {
          deps.log.error({ id: row.id, kind, attempts, err: reason }, 'mail outbox: giving up on a mail');
          await trx.deleteFrom('mailOutbox').where('id', '=', row.id).execute();
        } else {
          deps.log.warn({ id: row.id, kind, attempts, err: reason }, 'mail outbox: send failed; trying again later');
          const waitSeconds = Math.min(3600, 5 * 2 ** attempts);
          await trx.updateTable('mailOutbox').set({ attempts, notBefore: sql<Date>`now() + make_interval(secs => ${waitSeconds})` }).where('id', '=', row.id).execute();
        }
      }
      return true;
    });
  }

  function compose(item: DeferredMail): Promise<SendMailInput | null> {
    const composer = deps.composers?.[item.deferred];
    if (!composer) throw new Error(`no composer for deferred mail "${item.deferred}"`);
    return composer(item.input);
  }

  async function drain(): Promise<number> {
    let sent = 0;
    while (!stopped && (await sendOne())) sent++;
    return sent;
  }

  /** One drain at a time in this process; a kick during a drain makes it look again afterwards. */
  function kick(): void {
    if (running) {
      again = true;
      return;
    }
    running = drain().catch((err: unknown) => {
      deps.log.warn({ err: errorMessage(err) }, 'mail outbox: sender failed; will look again');
      return 0;
    }).finally(() => {
      running = undefined;
      if (again && !stopped) {
        again = false;
        kick();
      }
    });
  }

  const timer = setInterval(kick, deps.pollMs ?? 2000);
  timer.unref();

  return {
    async enqueue(mail) {
      const sealed = encryptSecret(deps.masterKeys, JSON.stringify(mail), outboxContext);
      await deps.db.insertInto('mailOutbox').values({ payload: sealed.ciphertext, keyId: sealed.keyId }).execute();
      // Sent once the answer has gone: rendering and handing over a mail takes tens of milliseconds,
      // which would otherwise tell in the answer's timing whether an address has an account.
      setTimeout(kick, sendDelayMs).unref();
    },
    drain,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}

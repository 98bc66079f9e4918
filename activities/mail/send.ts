/**
 * The send-mail activity: validates and renders a mail, then sends it at most once per idempotency
 * key, recording every step in email_log. docs/decisions/007-email-delivery-once.md explains the
 * guarantees and the one window where SMTP cannot give them.
 */
import { createHash } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import { z } from 'zod';
import type { Db } from '../../db/database.ts';
import { ErrorType, errorMessage } from '../../lib/errors.ts';
import type { Logger } from '../../lib/log.ts';
import { createEmailLogStore, MailInFlightError, type EmailLogStore } from './email-log.ts';
import type { MailData, MailKind } from './registry.ts';
import { MailDataError, renderMail } from './render.ts';
import { MailTransportError, type MailTransport } from './transport.ts';

export interface MailDeps {
  db: Db;
  transport: MailTransport;
  /** APP_URL: base of every link in a mail. */
  appUrl: string;
  /** MAIL_FROM, e.g. `Berth <hello@example.com>`. */
  from: string;
  log: Logger;
  /** The email_log queries; defaults to the store on `db`. Tests wrap it to inject crashes. */
  emailLog?: EmailLogStore;
  now?: () => Date;
}

/** One notification to send. `period` scopes it: the same kind in the same period is sent once. */
export interface SendMailInput<K extends MailKind = MailKind> {
  kind: K;
  to: string;
  /** The customer it is about; null before an account exists. Part of the idempotency key. */
  userId: string | null;
  /**
   * What makes this mail distinct from earlier ones of its kind: the billing period end for
   * reminders and payments, the backup id for backups, the token id for verification and resets.
   */
  period: string;
  data: MailData<K>;
}

export interface SendMailResult {
  /**
   * `sent`: handed to the provider by this call. `already-sent`: an earlier attempt did it.
   * `unknown`: an earlier attempt died mid-hand-over on a provider that cannot deduplicate (SMTP);
   * it is not sent again, so it went out once or never.
   */
  status: 'sent' | 'already-sent' | 'unknown';
  idempotencyKey: string;
  providerId: string | null;
}

const envelopeSchema = z.object({
  kind: z.string(),
  to: z.email(),
  userId: z.uuid().nullable(),
  // Printable ASCII without spaces: the key travels in HTTP and mail headers.
  period: z.string().regex(/^[\x21-\x7e]{1,120}$/, 'period must be 1–120 printable ASCII characters without spaces'),
  data: z.unknown(),
});

/**
 * The idempotency key of one notification: customer, kind (with its variant, e.g. which reminder)
 * and period. Without a user, a hash of the address stands in, so no address is kept in the key.
 */
export function mailIdempotencyKey(input: { userId: string | null; to: string; kind: string; keyVariant: string; period: string }): string {
  const customer = input.userId ?? `to-${createHash('sha256').update(input.to.trim().toLowerCase()).digest('hex').slice(0, 24)}`;
  const kind = input.keyVariant ? `${input.kind}-${input.keyVariant}` : input.kind;
  return `mail:${customer}:${kind}:${input.period}`;
}

/** The mail activities, built from their dependencies (only worker/ builds real ones). */
export function createMailActivities(deps: MailDeps) {
  const store = deps.emailLog ?? createEmailLogStore(deps.db);
  const now = deps.now ?? (() => new Date());
  const { transport, log } = deps;

  /**
   * Sends one notification at most once per idempotency key, safe to retry: a mail already logged
   * as sent is skipped; a retry after a crash between hand-over and log write resends only through
   * a provider that deduplicates on the key (Resend), and is reported `unknown` otherwise (SMTP).
   * Bad input fails non-retryably with type InvalidInput, naming every bad field.
   */
  async function sendMail(input: SendMailInput): Promise<SendMailResult> {
    const envelope = envelopeSchema.safeParse(input);
    if (!envelope.success) {
      throw ApplicationFailure.nonRetryable(`Invalid mail request:\n${z.prettifyError(envelope.error)}`, ErrorType.InvalidInput);
    }
    let rendered;
    try {
      rendered = await renderMail(input.kind as string, input.data, { appUrl: deps.appUrl });
    } catch (err) {
      if (err instanceof MailDataError) throw ApplicationFailure.nonRetryable(err.message, ErrorType.InvalidInput);
      throw err;
    }
    const idempotencyKey = mailIdempotencyKey({ userId: input.userId, to: input.to, kind: input.kind, keyVariant: rendered.keyVariant, period: input.period });
    const context = { kind: input.kind, userId: input.userId, idempotencyKey, provider: transport.provider };
    const result = (status: SendMailResult['status'], providerId: string | null): SendMailResult => ({ status, idempotencyKey, providerId });

    try {
      return await store.withKeyLock(idempotencyKey, async (emailLog) => {
        const { entry, claimed } = await emailLog.claim({
          idempotencyKey,
          userId: input.userId,
          kind: input.kind,
          recipient: input.to,
          subject: rendered.subject,
          provider: transport.provider,
        });
        if (!claimed) {
          if (entry.status === 'sent') {
            log.info({ ...context, providerId: entry.providerId }, 'mail already sent; not sending again');
            return result('already-sent', entry.providerId);
          }
          if (entry.status === 'failed') {
            // The provider refused the last attempt, so nothing went out: try again.
            await emailLog.reclaim(idempotencyKey, transport.provider);
          } else {
            // 'sending' and nobody holds the lock: an earlier attempt died between hand-over and
            // log write. Only a provider that still remembers the key can safely take it again.
            const sinceClaim = now().getTime() - entry.claimedAt.getTime();
            const deduplicated = transport.dedupeWindowMs > 0 && entry.provider === transport.provider && sinceClaim < transport.dedupeWindowMs;
            if (!deduplicated) {
              log.warn({ ...context, claimedAt: entry.claimedAt, lastError: entry.error }, 'an earlier attempt at this mail died mid-send; not resending, it may not have arrived');
              return result('unknown', null);
            }
            log.info(context, 'resending after an interrupted attempt; the provider deduplicates on the idempotency key');
          }
        }

        let providerId: string | null;
        try {
          ({ providerId } = await transport.send({
            from: deps.from,
            to: input.to,
            subject: rendered.subject,
            html: rendered.html,
            text: rendered.text,
            idempotencyKey,
            kind: input.kind,
          }));
        } catch (err) {
          if (err instanceof MailTransportError && err.outcome === 'already-sent') {
            await emailLog.markSent(idempotencyKey, null);
            log.info(context, 'provider reports this mail as sent by an earlier attempt');
            return result('already-sent', null);
          }
          const reason = errorMessage(err);
          if (err instanceof MailTransportError && err.outcome === 'not-sent') {
            await emailLog.markFailed(idempotencyKey, reason);
          } else {
            await emailLog.noteUnknown(idempotencyKey, reason);
          }
          log.warn({ ...context, err: reason }, 'mail hand-over failed');
          throw transportFailure(err, reason);
        }
        await emailLog.markSent(idempotencyKey, providerId);
        log.info({ ...context, providerId }, 'mail sent');
        return result('sent', providerId);
      });
    } catch (err) {
      if (err instanceof MailInFlightError) {
        throw ApplicationFailure.create({ message: err.message, type: ErrorType.Transient, nextRetryDelay: 5_000 });
      }
      throw err;
    }
  }

  return { sendMail };
}

export type MailActivities = ReturnType<typeof createMailActivities>;

function transportFailure(err: unknown, message: string): ApplicationFailure {
  if (!(err instanceof MailTransportError)) return ApplicationFailure.create({ message, type: ErrorType.Transient, cause: err instanceof Error ? err : undefined });
  const type = err.errorType ?? (err.status === 429 ? ErrorType.RateLimited : err.retryable ? ErrorType.Transient : ErrorType.InvalidInput);
  return ApplicationFailure.create({ message, type, nonRetryable: !err.retryable, nextRetryDelay: err.retryAfterMs, cause: err });
}

/**
 * How a finished mail leaves Berth: Resend in production, SMTP (maildev) locally. Both sit behind
 * one small interface so the send activity does not care which is configured.
 */
import { createHash } from 'node:crypto';
import nodemailer from 'nodemailer';
import { Resend } from 'resend';
import { ErrorType } from '../../lib/errors.ts';

export type MailProvider = 'smtp' | 'resend';

export interface OutgoingMail {
  from: string;
  to: string;
  subject: string;
  html: string;
  text: string;
  /** Same for every attempt at this mail; providers that support it deduplicate on it. */
  idempotencyKey: string;
  kind: string;
}

export interface MailTransport {
  readonly provider: MailProvider;
  /**
   * How long the provider remembers an idempotency key and answers a repeat without sending again;
   * 0 when it does not deduplicate at all (SMTP).
   */
  readonly dedupeWindowMs: number;
  /** Hands the mail over; resolves once the provider has accepted it. Throws MailTransportError. */
  send(mail: OutgoingMail): Promise<{ providerId: string | null }>;
  close(): Promise<void>;
}

/**
 * What a failed hand-over means for the mail:
 * - `not-sent`: the provider refused it; sending again cannot duplicate it.
 * - `unknown`: the provider may have accepted it (timeout, dropped connection, 5xx).
 * - `already-sent`: the provider says an earlier attempt with this key went through.
 */
export type MailOutcome = 'not-sent' | 'unknown' | 'already-sent';

export class MailTransportError extends Error {
  override name = 'MailTransportError';
  readonly outcome: MailOutcome;
  /** False when retrying the same request cannot succeed (bad address, bad API key). */
  readonly retryable: boolean;
  /** The provider's own retry hint (Retry-After). */
  readonly retryAfterMs: number | undefined;
  readonly status: number | undefined;
  /** The failure type to report, when the status alone does not say it (e.g. Misconfigured). */
  readonly errorType: ErrorType | undefined;

  constructor(message: string, opts: { outcome: MailOutcome; retryable: boolean; retryAfterMs?: number; status?: number; errorType?: ErrorType }) {
    super(message);
    this.outcome = opts.outcome;
    this.retryable = opts.retryable;
    this.retryAfterMs = opts.retryAfterMs;
    this.status = opts.status;
    this.errorType = opts.errorType;
  }
}

/** Resend keeps idempotency keys for 24 hours; we trust them for an hour less. */
const resendDedupeWindowMs = 23 * 3_600_000;

export interface ResendTransportOptions {
  apiKey: string;
  /**
   * API base URL. Defaults to what the resend SDK itself reads: RESEND_BASE_URL, else
   * https://api.resend.com. Tests point it at a local HTTP server.
   */
  baseUrl?: string;
}

/**
 * Sends through Resend's `POST /emails`, passing the idempotency key as the `Idempotency-Key`
 * header so a repeat of the same request within 24 hours returns the first answer and sends nothing.
 */
export function createResendTransport(opts: ResendTransportOptions): MailTransport {
  const client = new Resend(opts.apiKey, opts.baseUrl ? { baseUrl: opts.baseUrl } : undefined);
  return {
    provider: 'resend',
    dedupeWindowMs: resendDedupeWindowMs,
    async send(mail) {
      const { data, error, headers } = await client.emails.send(
        {
          from: mail.from,
          to: [mail.to],
          subject: mail.subject,
          html: mail.html,
          text: mail.text,
          tags: [{ name: 'kind', value: mail.kind.replace(/[^A-Za-z0-9_-]/g, '_') }],
        },
        { idempotencyKey: mail.idempotencyKey },
      );
      if (error) throw resendError(error, headers);
      return { providerId: data.id };
    },
    async close() {},
  };
}

function resendError(error: { name: string; message: string; statusCode: number | null }, headers: Record<string, string> | null): MailTransportError {
  const status = error.statusCode ?? undefined;
  const message = `Resend refused the mail (${status ?? 'no response'} ${error.name}): ${error.message}`;
  // The same key with a different body: an earlier request with this key was accepted.
  if (error.name === 'invalid_idempotent_request') return new MailTransportError(message, { outcome: 'already-sent', retryable: false, status });
  // Another request with this key is still being processed: its result decides.
  if (error.name === 'concurrent_idempotent_requests') return new MailTransportError(message, { outcome: 'unknown', retryable: true, status, retryAfterMs: 1000 });
  if (status === 429) {
    return new MailTransportError(message, { outcome: 'not-sent', retryable: true, status, retryAfterMs: retryAfter(headers) });
  }
  if (status === 401 || status === 403) return new MailTransportError(message, { outcome: 'not-sent', retryable: false, status, errorType: ErrorType.Misconfigured });
  if (status !== undefined && status >= 400 && status < 500) return new MailTransportError(message, { outcome: 'not-sent', retryable: false, status });
  // 5xx or no response at all: Resend may have accepted it before failing.
  return new MailTransportError(message, { outcome: 'unknown', retryable: true, status });
}

function retryAfter(headers: Record<string, string> | null): number | undefined {
  const value = headers?.['retry-after'];
  const seconds = value === undefined ? NaN : Number(value);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : undefined;
}

export interface SmtpTransportOptions {
  host: string;
  port: number;
  /** Implicit TLS (port 465). Local maildev speaks plain SMTP. */
  secure?: boolean;
  user?: string;
  pass?: string;
}

/** nodemailer error codes raised before any of the message reached the server. */
const refusedBeforeSendingCodes = new Set(['EENVELOPE', 'EAUTH', 'ENOAUTH', 'EDNS', 'EMESSAGE', 'ECONFIG', 'ETLS', 'EREQUIRETLS']);
/** Socket errors of a connection that never opened (kept by nodemailer as `originalCode`). */
const neverConnectedCodes = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);
/** Failures no retry fixes: our credentials or our message are wrong. */
const misconfiguredCodes = new Set(['EAUTH', 'ENOAUTH', 'ECONFIG', 'EMESSAGE']);

/**
 * Sends over SMTP with nodemailer. SMTP has no idempotency: the key travels only as a header and a
 * Message-ID derived from it (docs/decisions/007-email-delivery-once.md says what that buys).
 */
export function createSmtpTransport(opts: SmtpTransportOptions): MailTransport {
  const transporter = nodemailer.createTransport({
    host: opts.host,
    port: opts.port,
    secure: opts.secure ?? false,
    auth: opts.user ? { user: opts.user, pass: opts.pass ?? '' } : undefined,
    connectionTimeout: 10_000,
    greetingTimeout: 10_000,
    socketTimeout: 30_000,
  });
  return {
    provider: 'smtp',
    dedupeWindowMs: 0,
    async send(mail) {
      try {
        const info = await transporter.sendMail({
          from: mail.from,
          to: mail.to,
          subject: mail.subject,
          html: mail.html,
          text: mail.text,
          messageId: messageIdFor(mail.idempotencyKey, mail.from),
          headers: { 'X-Berth-Idempotency-Key': mail.idempotencyKey, 'X-Berth-Mail-Kind': mail.kind },
        });
        return { providerId: info.messageId ?? null };
      } catch (err) {
        throw smtpError(err);
      }
    },
    async close() {
      transporter.close();
    },
  };
}

function smtpError(err: unknown): MailTransportError {
  const e = err as { message?: string; code?: string; originalCode?: string; command?: string; responseCode?: number };
  const message = `SMTP send failed${e.command ? ` at ${e.command}` : ''}: ${e.message ?? String(err)}`;
  // An error reply (4xx/5xx), even to the end of the message body, means the server did not take it.
  const replied = typeof e.responseCode === 'number';
  const notSent =
    replied ||
    (e.code !== undefined && refusedBeforeSendingCodes.has(e.code)) ||
    (e.originalCode !== undefined && neverConnectedCodes.has(e.originalCode));
  // Anything else (a timeout or dropped connection while the body was in flight, with no reply) may
  // have been accepted: only the reply we never got would have told us.
  const permanent = (replied && e.responseCode! >= 500) || (e.code !== undefined && misconfiguredCodes.has(e.code));
  const misconfigured = e.code !== undefined && misconfiguredCodes.has(e.code) && e.code !== 'EMESSAGE';
  return new MailTransportError(message, {
    outcome: notSent ? 'not-sent' : 'unknown',
    retryable: !permanent,
    status: e.responseCode,
    errorType: misconfigured ? ErrorType.Misconfigured : undefined,
  });
}

/** A stable Message-ID per idempotency key, so every attempt at one mail carries the same id. */
export function messageIdFor(idempotencyKey: string, from: string): string {
  const domain = /@([^>\s]+)>?\s*$/.exec(from)?.[1] ?? 'berth.invalid';
  return `<${createHash('sha256').update(idempotencyKey).digest('hex').slice(0, 32)}@${domain}>`;
}

export interface MailTransportConfig {
  /** RESEND_API_KEY: when set, mail goes through Resend. */
  resendApiKey?: string;
  /** RESEND_BASE_URL (optional). */
  resendBaseUrl?: string;
  /** SMTP_URL, e.g. smtp://127.0.0.1:1025 (maildev) or smtps://user:pass@host:465. */
  smtpUrl?: string;
}

/** Resend when an API key is configured, otherwise SMTP (maildev locally). */
export function createMailTransport(config: MailTransportConfig): MailTransport {
  if (config.resendApiKey) return createResendTransport({ apiKey: config.resendApiKey, baseUrl: config.resendBaseUrl });
  if (!config.smtpUrl) throw new Error('mail: set RESEND_API_KEY (production) or SMTP_URL (local maildev)');
  const url = new URL(config.smtpUrl);
  if (url.protocol !== 'smtp:' && url.protocol !== 'smtps:') throw new Error(`mail: SMTP_URL must be smtp:// or smtps://, got ${url.protocol}`);
  const secure = url.protocol === 'smtps:';
  return createSmtpTransport({
    host: url.hostname,
    port: url.port ? Number(url.port) : secure ? 465 : 25,
    secure,
    user: url.username ? decodeURIComponent(url.username) : undefined,
    pass: url.password ? decodeURIComponent(url.password) : undefined,
  });
}

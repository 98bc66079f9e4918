/**
 * Proves invariant 3 (docs/invariants.md) on the SMTP path against a real maildev and real PostgreSQL: retrying the
 * send activity — after success, after a failure that already logged the mail as sent, after a crash
 * between hand-over and log write, after a refused hand-over, or concurrently — delivers exactly one
 * mail, counted through maildev's API.
 */
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createEmailLogStore, type EmailLogOps, type EmailLogStore } from '../../activities/mail/email-log.ts';
import { createMailActivities, type SendMailInput } from '../../activities/mail/send.ts';
import { createSmtpTransport, type MailTransport } from '../../activities/mail/transport.ts';
import { mailSamples } from '../../activities/mail/samples.ts';
import { startMaildev, type RunningMaildev } from '../../scripts/services/maildev.ts';
import { freePort } from '../../scripts/services/process.ts';
import { useTestDatabase } from '../support/db.ts';

const quiet = () => {};
const silentLog = { info() {}, warn() {}, error() {} } as never;
const from = 'Berth <hello@berth.test>';
const appUrl = 'http://localhost:3000';

const database = useTestDatabase({ name: 'mail_send' });
let maildev: RunningMaildev;
let smtp: MailTransport;

beforeAll(async () => {
  maildev = await startMaildev({ smtpPort: await freePort(), webPort: await freePort(), sink: quiet, name: 'maildev-test' });
  smtp = createSmtpTransport({ host: '127.0.0.1', port: maildev.smtpPort });
});

afterAll(async () => {
  await smtp?.close();
  await maildev?.stop();
});

beforeEach(async () => {
  await maildev.api.deleteAll();
});

let periodCounter = 0;
/** A fresh notification each test: its own period, so its own idempotency key. */
function serverReady(): SendMailInput<'server-ready'> {
  return { kind: 'server-ready', to: 'ada@example.com', userId: null, period: `server-${++periodCounter}-${Date.now()}`, data: mailSamples['server-ready'] };
}

function activities(overrides: { transport?: MailTransport; emailLog?: EmailLogStore } = {}) {
  return createMailActivities({ db: database.db, transport: overrides.transport ?? smtp, appUrl, from, log: silentLog, emailLog: overrides.emailLog });
}

/** Mails maildev caught for one idempotency key. */
async function delivered(key: string) {
  const all = await maildev.api.list();
  return all.filter((m) => m.headers['x-berth-idempotency-key'] === key);
}

/** The real store with markSent replaced, to stand in for a crash around the log write. */
function storeWith(markSent: (real: EmailLogOps, key: string, providerId: string | null) => Promise<void>): EmailLogStore {
  const real = createEmailLogStore(database.db);
  return {
    ...real,
    withKeyLock: (key, fn) => real.withKeyLock(key, (ops) => fn({ ...ops, markSent: (k, providerId) => markSent(ops, k, providerId) })),
  };
}

describe('sendMail over SMTP', () => {
  it('retrying after a successful send delivers one mail', async () => {
    const input = serverReady();
    const first = await activities().sendMail(input);
    const second = await activities().sendMail(input);

    expect(first.status).toBe('sent');
    expect(second).toEqual({ status: 'already-sent', idempotencyKey: first.idempotencyKey, providerId: first.providerId });
    const mails = await delivered(first.idempotencyKey);
    expect(mails).toHaveLength(1);
    expect(mails[0]!.subject).toBe('Your Berth server is ready');
    expect(mails[0]!.to[0]!.address).toBe('ada@example.com');
    expect(mails[0]!.text).toContain('203.0.113.10');

    const row = await createEmailLogStore(database.db).get(first.idempotencyKey);
    expect(row).toMatchObject({ status: 'sent', provider: 'smtp', providerId: first.providerId, attempts: 1, kind: 'server-ready', recipient: 'ada@example.com' });
    expect(row!.sentAt).toBeInstanceOf(Date);
  });

  it('a failure after the mail was logged as sent, then a retry, delivers one mail', async () => {
    const input = serverReady();
    const failsAfterLogging = storeWith(async (real, key, providerId) => {
      await real.markSent(key, providerId);
      throw new Error('worker lost before reporting the result');
    });
    await expect(activities({ emailLog: failsAfterLogging }).sendMail(input)).rejects.toThrow(/worker lost/);

    const retry = await activities().sendMail(input);
    const again = await activities().sendMail(input);
    expect(retry.status).toBe('already-sent');
    expect(again.status).toBe('already-sent');
    expect(await delivered(retry.idempotencyKey)).toHaveLength(1);
  });

  it('a crash between hand-over and log write is not resent over SMTP: one mail, reported unknown', async () => {
    const input = serverReady();
    const crashesBeforeLogging = storeWith(async () => {
      throw new Error('crash between send and log write');
    });
    await expect(activities({ emailLog: crashesBeforeLogging }).sendMail(input)).rejects.toThrow(/crash/);

    const retry = await activities().sendMail(input);
    expect(retry.status).toBe('unknown');
    expect((await activities().sendMail(input)).status).toBe('unknown');
    expect(await delivered(retry.idempotencyKey)).toHaveLength(1);
    expect(await createEmailLogStore(database.db).get(retry.idempotencyKey)).toMatchObject({ status: 'sending' });
  });

  it('a refused hand-over is logged as failed and the retry delivers one mail', async () => {
    const input = serverReady();
    const nobodyListens = createSmtpTransport({ host: '127.0.0.1', port: await freePort() });
    const failure = await activities({ transport: nobodyListens }).sendMail(input).catch((e: unknown) => e);
    await nobodyListens.close();
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect((failure as ApplicationFailure).type).toBe('Transient');
    expect((failure as ApplicationFailure).nonRetryable).toBe(false);

    const retry = await activities().sendMail(input);
    expect(retry.status).toBe('sent');
    expect(await delivered(retry.idempotencyKey)).toHaveLength(1);
    expect(await createEmailLogStore(database.db).get(retry.idempotencyKey)).toMatchObject({ status: 'sent', attempts: 2, error: null });
  });

  it('two attempts at the same time deliver one mail', async () => {
    const input = serverReady();
    const results = await Promise.allSettled([activities().sendMail(input), activities().sendMail(input), activities().sendMail(input)]);
    const sent = results.filter((r) => r.status === 'fulfilled' && r.value.status === 'sent');
    expect(sent).toHaveLength(1);
    for (const r of results) {
      if (r.status === 'rejected') expect((r.reason as ApplicationFailure).type).toBe('Transient');
      else expect(['sent', 'already-sent']).toContain(r.value.status);
    }
    const key = (sent[0] as PromiseFulfilledResult<{ idempotencyKey: string }>).value.idempotencyKey;
    expect(await delivered(key)).toHaveLength(1);
  });

  it('more concurrent sends than pooled connections all complete (the lock and its queries share one connection)', async () => {
    const inputs = Array.from({ length: 10 }, () => serverReady());
    const results = await Promise.all(inputs.map((input) => activities().sendMail(input)));
    expect(results.map((r) => r.status)).toEqual(inputs.map(() => 'sent'));
    expect(await maildev.api.list()).toHaveLength(10);
  });

  it('the 7-, 3- and 1-day reminders of one period are three mails, each sent once', async () => {
    const period = `period-${Date.now()}`;
    const keys = new Set<string>();
    for (const daysLeft of [7, 3, 1, 3] as const) {
      const result = await activities().sendMail({
        kind: 'subscription-ending', to: 'ada@example.com', userId: null, period,
        data: { ...mailSamples['subscription-ending'], daysLeft },
      });
      keys.add(result.idempotencyKey);
    }
    expect(keys.size).toBe(3);
    const subjects = (await maildev.api.list()).map((m) => m.subject).sort();
    expect(subjects).toEqual(['Your Berth subscription ends in 3 days', 'Your Berth subscription ends in 7 days', 'Your Berth subscription ends tomorrow']);
  });
});

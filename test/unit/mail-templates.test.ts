/**
 * Proves each mail template renders from its required data (subject and plain text checked), that a
 * hostile name is escaped in every template's HTML, and that bad data fails with a clear error.
 */
import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { formatMoney } from '../../activities/mail/format.ts';
import { mailKinds, type MailKind } from '../../activities/mail/registry.ts';
import { MailDataError, renderAll, renderMail } from '../../activities/mail/render.ts';
import { mailSamples } from '../../activities/mail/samples.ts';
import { createMailActivities, mailIdempotencyKey } from '../../activities/mail/send.ts';
import type { EmailLogStore } from '../../activities/mail/email-log.ts';
import type { MailTransport } from '../../activities/mail/transport.ts';

const appUrl = 'https://app.berth.test';

/** Per kind: the exact subject for its sample, and facts its plain text must state. */
const expected: Record<MailKind, { subject: string; text: string[] }> = {
  'welcome': { subject: 'Welcome to Berth', text: ['Hi Ada Lovelace,', 'https://app.berth.test/dashboard'] },
  'verify-email': { subject: 'Confirm your email address', text: ['http://localhost:3000/verify-email?token=sample-token', 'works for 24 hours'] },
  'password-reset': { subject: 'Reset your Berth password', text: ['http://localhost:3000/reset-password?token=sample-token', 'works for 60 minutes'] },
  'account-exists': { subject: 'You already have a Berth account', text: ['http://localhost:3000/login', 'http://localhost:3000/forgot-password', 'nothing was changed'] },
  'server-ready': { subject: 'Your Berth server is ready', text: ['203.0.113.10', 'https://app.berth.test/dashboard'] },
  'subscription-ending': {
    subject: 'Your Berth subscription ends in 3 days',
    text: ['Access ends on March 14, 2026', 'final backup', 'delete the server', 'for 30 days, until April 13, 2026', 'https://app.berth.test/billing'],
  },
  'subscription-expired': { subject: 'Your Berth subscription has ended', text: ['until April 13, 2026', 'restore your latest backup', 'https://app.berth.test/billing'] },
  'backup-created': { subject: 'Your Berth server has been backed up', text: ['March 11, 2026 at 2:00 AM UTC', '700.0 MB'] },
  'restore-complete': { subject: 'Your Berth server has been restored', text: ['203.0.113.24', 'March 11, 2026 at 2:00 AM UTC'] },
  'payment-succeeded': { subject: 'Payment received: $19.00', text: ['$19.00', 'paid until April 14, 2026', 'https://invoice.stripe.com/i/sample'] },
  'payment-failed': { subject: 'Your Berth payment did not go through', text: ['¥2,800', 'try again on March 17, 2026', 'https://app.berth.test/billing/portal'] },
  'server-stopped-idle': { subject: 'Your Berth server was stopped while idle', text: ['no activity for 24 hours', 'https://app.berth.test/dashboard'] },
  'provisioning-delayed': { subject: 'Setting up your server is taking longer: we are on it', text: ['We keep trying automatically', 'https://app.berth.test/dashboard'] },
};

describe('mail templates', () => {
  it.each(mailKinds)('%s renders subject, HTML and plain text from its sample data', async (kind) => {
    const mail = await renderMail(kind, mailSamples[kind], { appUrl });
    expect(mail.subject).toBe(expected[kind].subject);
    expect(mail.html).toMatch(/^<!DOCTYPE html/);
    expect(mail.html).toContain('Ada Lovelace');
    for (const fact of expected[kind].text) expect(mail.text).toContain(fact);
    expect(mail.text).toContain('Hi Ada Lovelace,');
    expect(mail.text).not.toMatch(/<[a-z]/i);
  });

  it.each(mailKinds)('%s escapes a hostile name in its HTML', async (kind) => {
    const hostile = '<script>alert(1)</script>';
    const mail = await renderMail(kind, { ...mailSamples[kind], name: hostile } as never, { appUrl });
    expect(mail.html).not.toContain(hostile);
    expect(mail.html).not.toMatch(/<script/i);
    expect(mail.html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    // Plain text is not HTML: the name appears as typed.
    expect(mail.text).toContain(hostile);
  });

  it('renders every reminder day with its own subject and idempotency variant', async () => {
    const subjects = [];
    const variants = [];
    for (const daysLeft of [7, 3, 1] as const) {
      const mail = await renderMail('subscription-ending', { ...mailSamples['subscription-ending'], daysLeft }, { appUrl });
      subjects.push(mail.subject);
      variants.push(mail.keyVariant);
    }
    expect(subjects).toEqual(['Your Berth subscription ends in 7 days', 'Your Berth subscription ends in 3 days', 'Your Berth subscription ends tomorrow']);
    expect(variants).toEqual(['7d', '3d', '1d']);
  });

  it('names the kind and each bad field when data is missing or wrong', async () => {
    const missing = renderMail('server-ready', { name: 'Ada' } as never, { appUrl });
    await expect(missing).rejects.toThrow(MailDataError);
    await expect(missing).rejects.toThrow(/Invalid data for mail "server-ready"[\s\S]*serverAddress/);

    const wrong = renderMail('payment-succeeded', { name: 'Ada', amountMinor: 19.99, currency: 'dollars' } as never, { appUrl });
    await expect(wrong).rejects.toThrow(/amountMinor[\s\S]*currency|currency[\s\S]*amountMinor/);

    await expect(renderMail('no-such-kind', {}, { appUrl })).rejects.toThrow(/Unknown mail kind "no-such-kind"/);
  });

  it('refuses a name with a newline, which would reach a header', async () => {
    await expect(renderMail('welcome', { name: 'Ada\r\nBcc: victim@example.com' }, { appUrl })).rejects.toThrow(/control characters/);
  });

  it('renderAll renders every kind once, in registry order', async () => {
    const all = await renderAll(mailSamples, { appUrl });
    expect(all.map((m) => m.kind)).toEqual(mailKinds);
    expect(all.every((m) => m.subject && m.html && m.text)).toBe(true);
  });
});

describe('formatMoney', () => {
  it('scales integer minor units by the currency and formats with Intl', () => {
    expect(formatMoney(1999, 'usd')).toBe('$19.99');
    expect(formatMoney(1900, 'EUR')).toBe('€19.00');
    // Zero-decimal: the amount is already whole yen.
    expect(formatMoney(500, 'jpy')).toBe('¥500');
    expect(formatMoney(12000, 'KRW')).toBe('₩12,000');
    // Three-decimal.
    expect(formatMoney(1500, 'KWD')).toMatch(/^KWD\s1\.500$/);
    // Stripe keeps ISK two-decimal in its API even though it has no minor unit in practice.
    expect(formatMoney(50000, 'ISK')).toMatch(/^ISK\s500$/);
    expect(() => formatMoney(19.5, 'USD')).toThrow(RangeError);
  });
});

describe('sendMail input validation', () => {
  const untouchable = new Proxy({}, { get: () => { throw new Error('must not reach the database or transport'); } });
  const activities = createMailActivities({
    db: untouchable as never,
    emailLog: untouchable as EmailLogStore,
    transport: untouchable as MailTransport,
    appUrl,
    from: 'Berth <hello@berth.test>',
    log: { info() {}, warn() {} } as never,
  });

  it('fails non-retryably with InvalidInput, naming the bad fields, before any I/O', async () => {
    const err = await activities
      .sendMail({ kind: 'backup-created', to: 'ada@example.com', userId: null, period: 'backup-1', data: { name: 'Ada' } as never })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).type).toBe('InvalidInput');
    expect((err as ApplicationFailure).nonRetryable).toBe(true);
    expect((err as Error).message).toMatch(/backup-created[\s\S]*createdAt[\s\S]*sizeBytes/);

    const envelope = await activities
      .sendMail({ kind: 'welcome', to: 'not an address', userId: 'x', period: 'has space', data: { name: 'Ada' } })
      .catch((e: unknown) => e);
    expect((envelope as ApplicationFailure).type).toBe('InvalidInput');
    expect((envelope as Error).message).toMatch(/to[\s\S]*userId[\s\S]*period/);
  });
});

describe('mailIdempotencyKey', () => {
  it('is one key per customer, kind (with variant) and period, without the raw address', () => {
    const base = { userId: null, to: 'Ada@Example.com', kind: 'subscription-ending', keyVariant: '3d', period: '2026-03-14' };
    const key = mailIdempotencyKey(base);
    expect(key).toMatch(/^mail:to-[0-9a-f]{24}:subscription-ending-3d:2026-03-14$/);
    expect(key).not.toContain('ada');
    expect(mailIdempotencyKey({ ...base, to: 'ada@example.com ' })).toBe(key);
    expect(mailIdempotencyKey({ ...base, keyVariant: '1d' })).not.toBe(key);
    expect(mailIdempotencyKey({ ...base, period: '2026-04-14' })).not.toBe(key);
    const user = '6f1c1d0e-3f7a-4a52-9d1e-2b8c7a1e9f00';
    expect(mailIdempotencyKey({ ...base, userId: user })).toBe(`mail:${user}:subscription-ending-3d:2026-03-14`);
  });
});

/**
 * Proves the Resend transport sends the right request (endpoint, auth, fields, Idempotency-Key) to
 * the endpoint in RESEND_BASE_URL, and that the send activity's retry after a crash between hand-over
 * and log write repeats the request with the same key, so Resend's deduplication keeps it one mail.
 * The local endpoint behaves as Resend documents: a repeated key returns the first response.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createEmailLogStore, type EmailLogStore } from '../../activities/mail/email-log.ts';
import { mailSamples } from '../../activities/mail/samples.ts';
import { createMailActivities, type SendMailInput } from '../../activities/mail/send.ts';
import { createResendTransport, type MailTransport } from '../../activities/mail/transport.ts';
import { useTestDatabase } from '../support/db.ts';

interface ReceivedRequest {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  body: Record<string, unknown>;
}

/** A stand-in for api.resend.com: records requests, deduplicates on Idempotency-Key, can be told to fail. */
function fakeResend() {
  const requests: ReceivedRequest[] = [];
  const byKey = new Map<string, { body: string; id: string }>();
  const delivered: string[] = [];
  const failNext: Array<{ status: number; name: string; headers?: Record<string, string> }> = [];
  const server = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (chunk: Buffer) => (raw += chunk.toString()));
    req.on('end', () => {
      requests.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers, body: JSON.parse(raw || '{}') });
      const reply = (status: number, payload: unknown, headers: Record<string, string> = {}) => {
        res.writeHead(status, { 'content-type': 'application/json', ...headers });
        res.end(JSON.stringify(payload));
      };
      const failure = failNext.shift();
      if (failure) return reply(failure.status, { statusCode: failure.status, name: failure.name, message: `injected ${failure.name}` }, failure.headers);
      const key = req.headers['idempotency-key'];
      if (typeof key === 'string') {
        const seen = byKey.get(key);
        if (seen && seen.body !== raw) return reply(409, { statusCode: 409, name: 'invalid_idempotent_request', message: 'same key, different payload' });
        if (seen) return reply(200, { id: seen.id });
      }
      const id = randomUUID();
      if (typeof key === 'string') byKey.set(key, { body: raw, id });
      delivered.push(id);
      reply(200, { id });
    });
  });
  return { server, requests, delivered, failNext };
}

const database = useTestDatabase({ name: 'mail_resend' });
const fake = fakeResend();
const apiKey = 're_test_not_a_real_key';
const from = 'Berth <hello@berth.test>';
const savedBaseUrl = process.env.RESEND_BASE_URL;
let transport: MailTransport;

beforeAll(async () => {
  await new Promise<void>((resolve) => fake.server.listen(0, '127.0.0.1', resolve));
  process.env.RESEND_BASE_URL = `http://127.0.0.1:${(fake.server.address() as AddressInfo).port}`;
  // No baseUrl option: the transport must pick the endpoint up from RESEND_BASE_URL.
  transport = createResendTransport({ apiKey });
});

afterAll(async () => {
  if (savedBaseUrl === undefined) delete process.env.RESEND_BASE_URL;
  else process.env.RESEND_BASE_URL = savedBaseUrl;
  await new Promise((resolve) => fake.server.close(resolve));
});

beforeEach(() => {
  fake.requests.length = 0;
  fake.delivered.length = 0;
  fake.failNext.length = 0;
});

/** The real store, except that writing 'sent' fails: a crash between hand-over and log write. */
function crashingBeforeLogWrite(): EmailLogStore {
  const real = createEmailLogStore(database.db);
  return {
    ...real,
    withKeyLock: (key, fn) => real.withKeyLock(key, (ops) => fn({ ...ops, markSent: async () => { throw new Error('crash between send and log write'); } })),
  };
}

let counter = 0;
function paymentSucceeded(): SendMailInput<'payment-succeeded'> {
  return { kind: 'payment-succeeded', to: 'ada@example.com', userId: null, period: `in_${++counter}_${Date.now()}`, data: mailSamples['payment-succeeded'] };
}

function activities(overrides: { emailLog?: EmailLogStore; now?: () => Date } = {}) {
  return createMailActivities({ db: database.db, transport, appUrl: 'https://app.berth.test', from, log: { info() {}, warn() {} } as never, ...overrides });
}

describe('Resend transport', () => {
  it('posts the mail to RESEND_BASE_URL/emails with auth, fields and the Idempotency-Key', async () => {
    const result = await activities().sendMail(paymentSucceeded());

    expect(result.status).toBe('sent');
    expect(fake.requests).toHaveLength(1);
    const request = fake.requests[0]!;
    expect(request.method).toBe('POST');
    expect(request.path).toBe('/emails');
    expect(request.headers.authorization).toBe(`Bearer ${apiKey}`);
    expect(request.headers['content-type']).toBe('application/json');
    expect(request.headers['idempotency-key']).toBe(result.idempotencyKey);
    expect(request.body).toMatchObject({ from, to: ['ada@example.com'], subject: 'Payment received: $19.00', tags: [{ name: 'kind', value: 'payment-succeeded' }] });
    expect(request.body.html).toEqual(expect.stringContaining('$19.00'));
    expect(request.body.text).toEqual(expect.stringContaining('https://app.berth.test/billing'));
    expect(result.providerId).toBe(fake.delivered[0]);
    expect(await createEmailLogStore(database.db).get(result.idempotencyKey)).toMatchObject({ status: 'sent', provider: 'resend', providerId: result.providerId });
  });

  it('a retry after a crash between send and log write reuses the key, and Resend keeps it one mail', async () => {
    const input = paymentSucceeded();
    const crashes = crashingBeforeLogWrite();
    await expect(activities({ emailLog: crashes }).sendMail(input)).rejects.toThrow(/crash/);

    const retry = await activities().sendMail(input);
    expect(retry.status).toBe('sent');
    expect(fake.requests).toHaveLength(2);
    const [first, second] = fake.requests;
    expect(second!.headers['idempotency-key']).toBe(first!.headers['idempotency-key']);
    expect(second!.headers['idempotency-key']).toBe(retry.idempotencyKey);
    expect(second!.body).toEqual(first!.body);
    expect(fake.delivered).toHaveLength(1);
    expect(retry.providerId).toBe(fake.delivered[0]);

    // Once logged as sent, further retries do not even ask Resend.
    expect((await activities().sendMail(input)).status).toBe('already-sent');
    expect(fake.requests).toHaveLength(2);
  });

  it('does not resend once Resend may have forgotten the key (24 h): reports unknown', async () => {
    const input = paymentSucceeded();
    const crashes = crashingBeforeLogWrite();
    await expect(activities({ emailLog: crashes }).sendMail(input)).rejects.toThrow(/crash/);

    const aDayLater = () => new Date(Date.now() + 24 * 3_600_000);
    const retry = await activities({ now: aDayLater }).sendMail(input);
    expect(retry.status).toBe('unknown');
    expect(fake.requests).toHaveLength(1);
  });

  it('a 5xx leaves the outcome unknown; the retry repeats the same key and delivers once', async () => {
    const input = paymentSucceeded();
    fake.failNext.push({ status: 500, name: 'internal_server_error' });
    const failure = await activities().sendMail(input).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect((failure as ApplicationFailure).type).toBe('Transient');
    expect((failure as ApplicationFailure).nonRetryable).toBe(false);

    expect((await activities().sendMail(input)).status).toBe('sent');
    expect(fake.requests.map((r) => r.headers['idempotency-key'])).toEqual([expect.any(String), fake.requests[0]!.headers['idempotency-key']]);
    expect(fake.delivered).toHaveLength(1);
  });

  it('maps refusals to failure types: 429 retries after Retry-After, 422 and 401 do not retry', async () => {
    fake.failNext.push({ status: 429, name: 'rate_limit_exceeded', headers: { 'retry-after': '2' } });
    const limited = (await activities().sendMail(paymentSucceeded()).catch((e: unknown) => e)) as ApplicationFailure;
    expect(limited.type).toBe('RateLimited');
    expect(limited.nonRetryable).toBe(false);
    expect(limited.nextRetryDelay).toBe(2000);

    fake.failNext.push({ status: 422, name: 'validation_error' });
    const invalid = (await activities().sendMail(paymentSucceeded()).catch((e: unknown) => e)) as ApplicationFailure;
    expect(invalid.type).toBe('InvalidInput');
    expect(invalid.nonRetryable).toBe(true);
    expect(await createEmailLogStore(database.db).get(fake.requests.at(-1)!.headers['idempotency-key'] as string)).toMatchObject({ status: 'failed', error: expect.stringContaining('validation_error') });

    fake.failNext.push({ status: 401, name: 'invalid_api_key' });
    const unauthorized = (await activities().sendMail(paymentSucceeded()).catch((e: unknown) => e)) as ApplicationFailure;
    expect(unauthorized.type).toBe('Misconfigured');
    expect(unauthorized.nonRetryable).toBe(true);
    expect(fake.delivered).toHaveLength(0);
  });

  it('treats "same key, different payload" as sent by an earlier attempt', async () => {
    const input = paymentSucceeded();
    const crashes = crashingBeforeLogWrite();
    await expect(activities({ emailLog: crashes }).sendMail(input)).rejects.toThrow(/crash/);
    // A deploy between the attempts changed the rendered body; Resend refuses the changed repeat.
    const changed = await activities().sendMail({ ...input, data: { ...input.data, invoiceUrl: 'https://invoice.stripe.com/i/changed' } });
    expect(changed.status).toBe('already-sent');
    expect(fake.delivered).toHaveLength(1);
    expect(await createEmailLogStore(database.db).get(changed.idempotencyKey)).toMatchObject({ status: 'sent' });
  });
});

import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import express from 'express';
import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createPlans } from '../../activities/billing/plans.ts';
import type { BillingEvent } from '../../activities/billing/billing-event.ts';
import { createStripeWebhookRouter } from '../../api/webhooks/stripe.ts';
import type { Db } from '../../db/database.ts';
import { createLogger } from '../../lib/log.ts';

// Invariant 4 (docs/invariants.md): forged or stale-signature events are rejected with 400 before anything reads them.
// The database is a trap: any use of it fails the test, so a 400 proves nothing was processed.

const secret = `whsec_${randomBytes(24).toString('hex')}`;
const delivered: BillingEvent[] = [];
const trapDb = new Proxy({}, { get: () => { throw new Error('the database was used'); } }) as Db;
let server: Server;
let url = '';

beforeAll(async () => {
  const app = express();
  app.use(createStripeWebhookRouter({
    db: trapDb,
    plans: createPlans(),
    delivery: { deliver: async (_userId, event) => { delivered.push(event); } },
    webhookSecret: secret,
    log: createLogger('test', 'silent'),
  }));
  server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhooks/stripe`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

/** An event of a type Berth acknowledges and ignores, so a 200 needs no database. */
function payload(): string {
  return JSON.stringify({ id: `evt_${randomBytes(8).toString('hex')}`, object: 'event', api_version: Stripe.API_VERSION, created: Math.floor(Date.now() / 1000), type: 'customer.created', data: { object: { id: 'cus_1', object: 'customer' } }, livemode: false, pending_webhooks: 1, request: { id: null, idempotency_key: null } });
}

function sign(body: string, opts: { secret?: string; timestamp?: number } = {}): string {
  return Stripe.webhooks.generateTestHeaderString({ payload: body, secret: opts.secret ?? secret, timestamp: opts.timestamp ?? Math.floor(Date.now() / 1000) });
}

async function post(body: string, header?: string): Promise<{ status: number; json: unknown }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...(header ? { 'stripe-signature': header } : {}) }, body });
  return { status: res.status, json: await res.json() };
}

describe('POST /webhooks/stripe signature', () => {
  test('a correctly signed event is accepted (200) and an ignored type has no effect', async () => {
    const body = payload();
    const res = await post(body, sign(body));
    expect(res).toEqual({ status: 200, json: { received: true, outcome: 'ignored' } });
  });

  test('a tampered body with the original signature is refused with 400', async () => {
    const body = payload();
    const header = sign(body);
    const res = await post(body.replace('"livemode":false', '"livemode":true'), header);
    expect(res).toEqual({ status: 400, json: { error: 'invalid signature' } });
  });

  test('a body signed with another secret is refused with 400', async () => {
    const body = payload();
    const res = await post(body, sign(body, { secret: `whsec_${randomBytes(24).toString('hex')}` }));
    expect(res.status).toBe(400);
  });

  test('a signature older than 300 s is refused with 400; one just inside the window is accepted', async () => {
    const body = payload();
    const now = Math.floor(Date.now() / 1000);
    expect((await post(body, sign(body, { timestamp: now - 301 }))).status).toBe(400);
    expect((await post(body, sign(body, { timestamp: now - 290 }))).status).toBe(200);
  });

  test('a request without a Stripe-Signature header is refused with 400', async () => {
    expect(await post(payload())).toEqual({ status: 400, json: { error: 'invalid signature' } });
  });

  test('a malformed header is refused with 400', async () => {
    expect((await post(payload(), 't=abc,v1=zz')).status).toBe(400);
  });

  test('nothing was delivered to a workflow by any refused request', () => {
    expect(delivered).toEqual([]);
  });
});

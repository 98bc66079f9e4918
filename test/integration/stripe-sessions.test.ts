/**
 * Berth's Stripe API calls checked against stripe-mock (Stripe's OpenAPI spec answers for shape),
 * through a recording proxy that captures Idempotency-Keys: retried session creation never asks
 * Stripe for a second customer or a second Checkout Session.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { syncInvoices } from '../../activities/billing/invoices.ts';
import { createPlans } from '../../activities/billing/plans.ts';
import { createStripeSessions, NoStripeCustomerError, type BillingSessions } from '../../activities/billing/sessions.ts';
import { createStripeClient, stripeApiVersion } from '../../activities/billing/stripe-client.ts';
import { createUser } from '../../db/repositories/users.ts';
import { startStripeMock, type StripeMockServer } from '../../scripts/services/stripe-mock.ts';
import { useTestDatabase } from '../support/db.ts';
import { assertStripeEndpointsSupported, checkWebhookEndpoints } from '../../activities/billing/api-versions.ts';
import { freePort } from '../../scripts/services/process.ts';
import { startRecordingProxy, type RecordingProxy } from '../support/recording-proxy.ts';

const database = useTestDatabase({ name: 'stripe_sessions' });
const plans = createPlans();
let mock: StripeMockServer;
let proxy: RecordingProxy;
let sessions: BillingSessions;
const stripe = () => createStripeClient({ secretKey: 'sk_test_berthlocal', host: '127.0.0.1', port: proxy.port, protocol: 'http', maxNetworkRetries: 2 });

beforeAll(async () => {
  mock = await startStripeMock({ sink: () => {} });
  proxy = await startRecordingProxy({ host: mock.host, port: mock.port });
  sessions = createStripeSessions({ stripe: stripe(), db: database.db, plans, appUrl: 'http://localhost:3000' });
});
afterAll(async () => {
  await proxy?.close();
  await mock?.stop();
});

async function newUser() {
  return createUser(database.db, { email: `s-${randomUUID()}@example.com`, passwordHash: 'x', name: 'S' });
}
const posts = (path: string) => proxy.requests.filter((r) => r.method === 'POST' && r.path === path);

describe('Checkout and Portal sessions against stripe-mock', () => {
  test('the client pins the stripe package\'s API version', () => {
    expect(stripeApiVersion).toBe('2026-10-28.endive');
  });

  test('a retried checkout request reuses the customer and sends the same Idempotency-Key; a new request gets a new key', async () => {
    const user = await newUser();
    proxy.requests.length = 0;
    const first = await sessions.createCheckoutSession({ userId: user.id, email: user.email, plan: 'pro', requestId: 'req-1' });
    expect(first.url).toMatch(/^https:\/\//);
    // The activity is retried (e.g. its worker crashed after the call): same request id.
    await sessions.createCheckoutSession({ userId: user.id, email: user.email, plan: 'pro', requestId: 'req-1' });
    await sessions.createCheckoutSession({ userId: user.id, email: user.email, plan: 'pro', requestId: 'req-2' });

    expect(posts('/v1/customers')).toEqual([{ method: 'POST', path: '/v1/customers', idempotencyKey: `berth:${user.id}:customer:once`, status: 200 }]);
    const checkout = posts('/v1/checkout/sessions');
    expect(checkout.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(checkout.map((r) => r.idempotencyKey)).toEqual([
      `berth:${user.id}:checkout:pro:req-1`,
      `berth:${user.id}:checkout:pro:req-1`,
      `berth:${user.id}:checkout:pro:req-2`,
    ]);
    const customer = await database.db.selectFrom('customers').select('stripeCustomerId').where('userId', '=', user.id).executeTakeFirstOrThrow();
    expect(customer.stripeCustomerId).toMatch(/^cus_/);
  });

  test('a network fault after Stripe answered is retried by the client under the same key', async () => {
    const user = await newUser();
    await sessions.createCheckoutSession({ userId: user.id, email: user.email, plan: 'starter', requestId: 'a' });
    proxy.requests.length = 0;
    proxy.failNext(1);
    await sessions.createCheckoutSession({ userId: user.id, email: user.email, plan: 'starter', requestId: 'b' });
    const checkout = posts('/v1/checkout/sessions');
    expect(checkout).toHaveLength(2);
    expect(new Set(checkout.map((r) => r.idempotencyKey))).toEqual(new Set([`berth:${user.id}:checkout:starter:b`]));
    expect(posts('/v1/customers')).toEqual([]);
  });

  test('two concurrent first checkouts of one user ask for the customer under one key', async () => {
    const user = await newUser();
    proxy.requests.length = 0;
    await Promise.all(['x', 'y'].map((requestId) => sessions.createCheckoutSession({ userId: user.id, email: user.email, plan: 'pro', requestId }).catch((err: unknown) => err)));
    const keys = new Set(posts('/v1/customers').map((r) => r.idempotencyKey));
    expect(keys).toEqual(new Set([`berth:${user.id}:customer:once`]));
  });

  test('a portal session needs a Stripe customer and carries its own key', async () => {
    const user = await newUser();
    await expect(sessions.createPortalSession({ userId: user.id, requestId: 'p' })).rejects.toBeInstanceOf(NoStripeCustomerError);
    await sessions.createCheckoutSession({ userId: user.id, email: user.email, plan: 'pro', requestId: 'c' });
    proxy.requests.length = 0;
    const portal = await sessions.createPortalSession({ userId: user.id, requestId: 'p' });
    expect(portal.url).toBeTruthy();
    expect(posts('/v1/billing_portal/sessions')).toEqual([{ method: 'POST', path: '/v1/billing_portal/sessions', idempotencyKey: `berth:${user.id}:portal:p`, status: 200 }]);
  });

  test('invoice sync reads Stripe invoices and stores integer minor units', async () => {
    const user = await newUser();
    await sessions.createCheckoutSession({ userId: user.id, email: user.email, plan: 'pro', requestId: 'i' });
    const written = await syncInvoices({ stripe: stripe(), db: database.db }, user.id);
    expect(written).toBeGreaterThan(0);
    const rows = await database.db.selectFrom('invoices').selectAll().where('userId', '=', user.id).execute();
    expect(rows).toHaveLength(written);
    for (const row of rows) {
      expect(Number.isInteger(row.amountMinor)).toBe(true);
      expect(row.currency).toMatch(/^[a-z]{3}$/);
    }
    // Synced twice: upsert by Stripe id, no duplicates.
    await syncInvoices({ stripe: stripe(), db: database.db }, user.id);
    expect(await database.db.selectFrom('invoices').select('id').where('userId', '=', user.id).execute()).toHaveLength(written);
  });
});

describe('the start-up check of the webhook endpoints, against stripe-mock', () => {
  // stripe-mock's fixture: one enabled endpoint at https://example.com/my/webhook/endpoint, with no
  // version of its own; its events name none either. The verdicts themselves are unit-tested.
  const fixtureUrl = 'https://example.com/my/webhook/endpoint';
  const logged: string[] = [];
  const log = { info: (_o: object, msg: string) => logged.push(`info: ${msg}`), warn: (_o: object, msg: string) => logged.push(`warn: ${msg}`) };

  test("lists the account's endpoints and asks for the account's version when an endpoint of this app has none", async () => {
    proxy.requests.length = 0;
    const check = await checkWebhookEndpoints(stripe(), fixtureUrl);
    expect(check.endpoints).toEqual([{ id: expect.stringMatching(/^we_/), apiVersion: null, effectiveVersion: null }]);
    expect(check.problems).toEqual([]);
    expect(check.warnings[0]).toMatch(/account's default API version, which is not known yet/);
    expect(proxy.requests.map((r) => [r.method, r.path, r.status])).toEqual([['GET', '/v1/webhook_endpoints', 200], ['GET', '/v1/events', 200]]);
  });

  test('an app no endpoint delivers to starts with a warning', async () => {
    logged.length = 0;
    const check = await assertStripeEndpointsSupported(stripe(), 'https://berth.example/webhooks/stripe', log);
    expect(check?.endpoints).toEqual([]);
    expect(logged[0]).toMatch(/^warn: no enabled Stripe webhook endpoint delivers to https:\/\/berth\.example/);
  });

  test('an unreachable Stripe is logged and does not stop the start', async () => {
    logged.length = 0;
    const down = createStripeClient({ secretKey: 'sk_test_berthlocal', host: '127.0.0.1', port: await freePort(), protocol: 'http', maxNetworkRetries: 0 });
    expect(await assertStripeEndpointsSupported(down, fixtureUrl, log)).toBeNull();
    expect(logged).toEqual(['warn: could not list Stripe webhook endpoints: their API version is not checked']);
  });
});

/**
 * The Stripe webhook path end to end: signed HTTP request → express router → PostgreSQL (own
 * schema) → signalWithStart to a real Temporal dev server, where a recorder workflow (test/support)
 * counts what reached it. Proves invariant 4 (docs/invariants.md: each event takes effect once) and order-independence.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import express from 'express';
import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createTemporalBillingDelivery, type BillingEventDelivery } from '../../activities/billing/delivery.ts';
import { createPlans, localPriceIds } from '../../activities/billing/plans.ts';
import { reconcileStripeEvents } from '../../activities/billing/reconcile.ts';
import { createLocalBilling, type LocalBilling } from '../../api/local-billing/index.ts';
import { buildCheckoutSession, buildEvent, buildInvoice, buildSubscription, stripeId, type LocalSubscription } from '../../api/local-billing/stripe-objects.ts';
import { createStripeWebhookRouter } from '../../api/webhooks/stripe.ts';
import { createUser } from '../../db/repositories/users.ts';
import { createLogger } from '../../lib/log.ts';
import { billingEventSignal, recorderStateQuery, type RecorderState } from '../support/billing-recorder-workflow.ts';
import { useTestDatabase } from '../support/db.ts';
import { inLegacyVersion, inVersion, legacyVersion } from '../support/stripe-versions.ts';
import { listStripeEventsNeedingAttention } from '../../activities/billing/store.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const database = useTestDatabase({ name: 'stripe_webhooks' });
const plans = createPlans();
const secret = `whsec_${randomBytes(24).toString('hex')}`;
const taskQueue = `billing-test-${randomBytes(4).toString('hex')}`;
const log = createLogger('test', 'silent');

let connection: Connection;
let nativeConnection: NativeConnection;
let client: Client;
let worker: Worker;
let workerRun: Promise<void>;
let server: Server;
let baseUrl = '';
let local: LocalBilling;
/** Set by a test to make the next deliveries fail (Temporal unreachable, say). */
let failDeliveries = 0;

beforeAll(async () => {
  const address = process.env.TEMPORAL_ADDRESS!;
  connection = await Connection.connect({ address });
  client = new Client({ connection });
  nativeConnection = await NativeConnection.connect({ address });
  worker = await Worker.create({ connection: nativeConnection, taskQueue, workflowsPath: path.join(here, '../support/billing-recorder-workflow.ts') });
  workerRun = worker.run();

  const temporal = createTemporalBillingDelivery({ client, taskQueue, workflowType: 'billingRecorder', signal: billingEventSignal, workflowArgs: (userId) => [userId] });
  const delivery: BillingEventDelivery = {
    async deliver(userId, event) {
      if (failDeliveries > 0) {
        failDeliveries -= 1;
        throw new Error('temporal unavailable (simulated)');
      }
      await temporal.deliver(userId, event);
    },
  };
  const app = express();
  const deps = { db: database.db, plans, delivery, webhookSecret: secret, log };
  app.use(createStripeWebhookRouter(deps));
  server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  local = createLocalBilling({ db: database.db, plans, appUrl: baseUrl, webhookSecret: secret, log });
  app.use(local.router);
});

afterAll(async () => {
  await new Promise<void>((resolve) => server?.close(() => resolve()));
  worker?.shutdown();
  await workerRun;
  await nativeConnection?.close();
  await connection?.close();
});

async function newUser(): Promise<string> {
  const user = await createUser(database.db, { email: `u-${randomUUID()}@example.com`, passwordHash: 'x', name: 'Test' });
  return user.id;
}

async function deliver(event: Stripe.Event): Promise<{ status: number; outcome?: string }> {
  const payload = JSON.stringify(event);
  const header = Stripe.webhooks.generateTestHeaderString({ payload, secret });
  const res = await fetch(`${baseUrl}/webhooks/stripe`, { method: 'POST', headers: { 'content-type': 'application/json', 'stripe-signature': header }, body: payload });
  const body = (await res.json()) as { outcome?: string };
  return { status: res.status, outcome: body.outcome };
}

async function workflowState(userId: string): Promise<RecorderState> {
  return client.workflow.getHandle(`customer-${userId}`).query(recorderStateQuery);
}

async function signalCount(userId: string): Promise<number> {
  const history = await client.workflow.getHandle(`customer-${userId}`).fetchHistory();
  return (history.events ?? []).filter((e) => e.workflowExecutionSignaledEventAttributes).length;
}

async function dbState(userId: string) {
  const invoices = await database.db.selectFrom('invoices').select(['stripeInvoiceId', 'stripeSubscriptionId', 'amountMinor', 'currency', 'status', 'periodStart', 'periodEnd']).where('userId', '=', userId).orderBy('stripeInvoiceId').execute();
  const customer = await database.db.selectFrom('customers').select(['stripeCustomerId', 'stripeSubscriptionId']).where('userId', '=', userId).executeTakeFirst();
  return { invoices, customer };
}

const day = 86400;
const month = 30 * day;

/** The events of one subscription's life, each with its own `created`, in Stripe's order. */
const t0 = Math.floor(Date.now() / 1000) - 90 * day;
function story(userId: string) {
  const ids = { customerId: stripeId('cus'), subscriptionId: stripeId('sub'), itemId: stripeId('si') };
  const sub = (over: Partial<LocalSubscription>): LocalSubscription => ({
    userId, email: 'a@example.com', plan: 'pro', priceId: localPriceIds.pro, productId: 'prod_pro', amountMinor: 1900, currency: 'eur', ...ids,
    status: 'active', created: t0, periodStart: t0, periodEnd: t0 + month, cancelAtPeriodEnd: false, canceledAt: null, endedAt: null, latestInvoiceId: null, ...over,
  });
  const inv = (s: LocalSubscription, id: string, status: 'open' | 'paid', start: number, created: number, attempts = 1) =>
    buildInvoice(s, { id, status, billingReason: start === t0 ? 'subscription_create' : 'subscription_cycle', periodStart: start, periodEnd: start + month, attemptCount: attempts, created, nextPaymentAttempt: null }, baseUrl);
  const first = sub({});
  const second = sub({ periodStart: t0 + month, periodEnd: t0 + 2 * month });
  const third = sub({ periodStart: t0 + 2 * month, periodEnd: t0 + 3 * month });
  return [
    buildEvent('customer.subscription.created', buildSubscription(first), { created: t0 }),
    buildEvent('invoice.paid', inv(first, `in_${userId.slice(0, 8)}_1`, 'paid', t0, t0 + 1), { created: t0 + 1 }),
    buildEvent('checkout.session.completed', buildCheckoutSession(first, { sessionId: stripeId('cs_test'), created: t0 - 60, successUrl: 's', cancelUrl: 'c', invoiceId: `in_${userId.slice(0, 8)}_1` }), { created: t0 + 2 }),
    buildEvent('invoice.payment_failed', inv(second, `in_${userId.slice(0, 8)}_2`, 'open', t0 + month, t0 + month), { created: t0 + month }),
    buildEvent('customer.subscription.updated', buildSubscription({ ...second, status: 'past_due' }), { created: t0 + month + 1 }),
    buildEvent('invoice.paid', inv(second, `in_${userId.slice(0, 8)}_2`, 'paid', t0 + month, t0 + month, 2), { created: t0 + month + 2 * day }),
    buildEvent('customer.subscription.updated', buildSubscription(second), { created: t0 + month + 2 * day + 1 }),
    buildEvent('invoice.paid', inv(third, `in_${userId.slice(0, 8)}_3`, 'paid', t0 + 2 * month, t0 + 2 * month), { created: t0 + 2 * month }),
    buildEvent('customer.subscription.updated', buildSubscription({ ...third, cancelAtPeriodEnd: true, canceledAt: t0 + 2 * month + 5 * day }), { created: t0 + 2 * month + 5 * day }),
  ] as Stripe.Event[];
}

/** Deterministic shuffle (mulberry32) so a failure can be replayed from its seed. */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  let a = seed;
  const random = () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** Replaces the user-specific ids so two users' states compare field by field. */
function comparable(state: Awaited<ReturnType<typeof dbState>>, wf: RecorderState, events: Stripe.Event[]) {
  const sub = (events[0]!.data.object as Stripe.Subscription);
  const rename = (id: string | null | undefined) => id?.replace(sub.id, 'SUB').replace(String(sub.customer), 'CUS').replace(/^in_[0-9a-f]{8}_/, 'in_');
  return {
    invoices: state.invoices.map((i) => ({ ...i, stripeInvoiceId: rename(i.stripeInvoiceId), stripeSubscriptionId: rename(i.stripeSubscriptionId) })),
    customer: { stripeCustomerId: rename(state.customer?.stripeCustomerId), stripeSubscriptionId: rename(state.customer?.stripeSubscriptionId) },
    workflow: { accessEndsAt: wf.accessEndsAt, plan: wf.plan, cancelAtPeriodEnd: wf.cancelAtPeriodEnd, payment: wf.payment, applied: wf.eventIds.length },
  };
}

async function eventually<T>(read: () => Promise<T>, ok: (value: T) => boolean, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read().catch(() => undefined);
    if (value !== undefined && ok(value)) return value;
    if (Date.now() > deadline) return value as T;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

describe('POST /webhooks/stripe, exactly once', () => {
  test('the same event delivered 100 times concurrently has one effect: one row, one invoice, one signal', async () => {
    const userId = await newUser();
    const event = story(userId)[1]!; // invoice.paid
    const results = await Promise.all(Array.from({ length: 100 }, () => deliver(event)));

    expect(results.every((r) => r.status === 200)).toBe(true);
    expect(results.filter((r) => r.outcome === 'processed')).toHaveLength(1);
    expect(results.filter((r) => r.outcome === 'duplicate')).toHaveLength(99);
    const rows = await database.db.selectFrom('stripeEvents').selectAll().where('eventId', '=', event.id).execute();
    expect(rows).toHaveLength(1);
    expect(rows[0]!.processedAt).not.toBeNull();
    expect((await dbState(userId)).invoices).toHaveLength(1);
    expect(await signalCount(userId)).toBe(1);
    expect((await workflowState(userId)).deliveries).toBe(1);
  });

  test('a delivery whose signal failed answers 500 and the redelivery signals; a later one does nothing', async () => {
    const userId = await newUser();
    const event = story(userId)[0]!;
    failDeliveries = 1;
    expect(await deliver(event)).toEqual({ status: 500, outcome: undefined });
    const row = await database.db.selectFrom('stripeEvents').selectAll().where('eventId', '=', event.id).executeTakeFirstOrThrow();
    expect(row.processedAt).toBeNull();
    // The database effect was committed with the event row; the signal is still owed.
    expect((await dbState(userId)).customer?.stripeSubscriptionId).toBe((event.data.object as Stripe.Subscription).id);

    expect(await deliver(event)).toEqual({ status: 200, outcome: 'processed' });
    expect(await deliver(event)).toEqual({ status: 200, outcome: 'duplicate' });
    expect(await signalCount(userId)).toBe(1);
  });

  test('unknown event types are acknowledged and ignored, leaving no row', async () => {
    const userId = await newUser();
    const sub = story(userId)[0]!.data.object as Stripe.Subscription;
    const event = buildEvent('customer.subscription.trial_will_end', sub, { created: sub.created });
    expect(await deliver(event)).toEqual({ status: 200, outcome: 'ignored' });
    expect(await database.db.selectFrom('stripeEvents').select('eventId').where('eventId', '=', event.id).execute()).toEqual([]);
  });
});

describe('events of an API version Berth does not read', () => {
  test('a 2024-06-20 subscription update is acknowledged (not 500), recorded for an operator, delivered to no workflow, and skipped by reconciliation', async () => {
    const userId = await newUser();
    // The reported case: the period on the subscription, items carrying only their price.
    const event = inLegacyVersion(story(userId)[4]!);
    expect(await deliver(event)).toEqual({ status: 200, outcome: 'needs_attention' });
    expect(await deliver(event)).toEqual({ status: 200, outcome: 'needs_attention' });

    const rows = await database.db.selectFrom('stripeEvents').selectAll().where('eventId', '=', event.id).execute();
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ type: 'customer.subscription.updated', apiVersion: legacyVersion, processedAt: null });
    expect(rows[0]!.attention).toMatch(/2024-06-20.*older than 2025-03-31\.basil/);
    expect((await listStripeEventsNeedingAttention(database.db)).map((r) => r.eventId)).toContain(event.id);
    // No half-read effect: no customer link, no workflow.
    expect((await dbState(userId)).customer).toBeUndefined();
    await expect(client.workflow.getHandle(`customer-${userId}`).describe()).rejects.toThrow();

    const stripe = { events: { list: () => [{ ...event, created: Math.floor(Date.now() / 1000) - 60 }] } } as unknown as Stripe;
    const again = await reconcileStripeEvents({ db: database.db, plans, delivery: { deliver: async () => { throw new Error('must not deliver'); } }, log, stripe });
    expect(again).toMatchObject({ listed: 1, replayed: 0 });
  });

  test('the same story in an older supported version (2025-09-30.clover) takes effect like the pinned one', async () => {
    const userId = await newUser();
    for (const event of story(userId).slice(0, 3)) expect(await deliver(inVersion(event, '2025-09-30.clover'))).toEqual({ status: 200, outcome: 'processed' });
    const wf = await eventually(() => workflowState(userId), (s) => s.eventIds.length === 3);
    expect(wf).toMatchObject({ plan: 'pro', payment: 'paid' });
  });
});

describe('out-of-order delivery', () => {
  test('shuffled orderings of a subscription\'s events converge to the same database and workflow state', async () => {
    const states = [];
    for (const seed of [0, 1, 2, 3]) {
      const userId = await newUser();
      const events = story(userId);
      const order = seed === 0 ? events : shuffled(events, seed);
      if (seed === 1) expect(order.map((e) => e.id)).not.toEqual(events.map((e) => e.id));
      for (const event of order) expect((await deliver(event)).status).toBe(200);
      const wf = await eventually(() => workflowState(userId), (s) => s.eventIds.length === events.length);
      states.push(comparable(await dbState(userId), wf, events));
    }
    expect(states[0]!.workflow).toMatchObject({ plan: 'pro', cancelAtPeriodEnd: true, payment: 'paid', applied: 9 });
    expect(states[0]!.invoices.map((i) => i.status)).toEqual(['paid', 'paid', 'paid']);
    expect(states[0]!.invoices.every((i) => Number.isInteger(i.amountMinor) && i.amountMinor === 1900 && i.currency === 'eur')).toBe(true);
    for (const state of states.slice(1)) expect(state).toEqual(states[0]);
  });
});

describe('reconciliation', () => {
  test('events our endpoint never received are replayed once; processed ones are skipped', async () => {
    const userId = await newUser();
    const events = story(userId).slice(0, 3);
    expect((await deliver(events[0]!)).outcome).toBe('processed');
    const listed = events.map((e) => ({ ...e, created: Math.floor(Date.now() / 1000) - 60 }));
    const stripe = { events: { list: () => listed } } as unknown as Stripe;
    const first = await reconcileStripeEvents({ db: database.db, plans, delivery: createTemporalBillingDelivery({ client, taskQueue, workflowType: 'billingRecorder', signal: billingEventSignal, workflowArgs: (u) => [u] }), log, stripe });
    expect(first).toMatchObject({ listed: 3, replayed: 2, outcomes: { processed: 2 } });
    const again = await reconcileStripeEvents({ db: database.db, plans, delivery: { deliver: async () => { throw new Error('must not deliver'); } }, log, stripe });
    expect(again).toMatchObject({ listed: 3, replayed: 0 });
    // One signal per event: the delivered one and the two replayed (read until the history shows them).
    expect(await eventually(() => signalCount(userId), (n) => n >= 3, 10_000)).toBe(3);
  });
});

describe('local billing through the real webhook path', () => {
  test('checkout, renewal, failure, recovery, cancel, resume and expiry arrive as signed Stripe events with their effects', async () => {
    const userId = await newUser();
    const checkout = await local.sessions.createCheckoutSession({ userId, email: 'local@example.com', plan: 'starter', requestId: 'r1' });
    expect(await local.sessions.createCheckoutSession({ userId, email: 'local@example.com', plan: 'starter', requestId: 'r1' })).toEqual(checkout);

    const page = await fetch(checkout.url);
    expect(await page.text()).toContain('Pay');
    const paid = await fetch(`${checkout.url}/pay`, { method: 'POST', redirect: 'manual' });
    expect(paid.status).toBe(303);
    expect(paid.headers.get('location')).toContain(`/billing/success?session_id=${checkout.id}`);

    const sub = local.subscription(userId)!;
    let wf = await eventually(() => workflowState(userId), (s) => s.eventIds.length === 3);
    expect(wf).toMatchObject({ plan: 'starter', payment: 'paid', accessEndsAt: new Date(sub.periodEnd * 1000).toISOString() });
    expect(await dbState(userId)).toMatchObject({ customer: { stripeCustomerId: sub.customerId, stripeSubscriptionId: sub.subscriptionId }, invoices: [{ status: 'paid', amountMinor: 900, currency: 'eur' }] });

    const firstEnd = sub.periodEnd;
    const post = (action: string) => fetch(`${baseUrl}/local-billing/dev/${userId}/${action}`, { method: 'POST' }).then(async (r) => ({ status: r.status, body: (await r.json()) as { events: { type: string; status: number }[] } }));
    const renew = await post('renew');
    expect(renew.status).toBe(200);
    expect(renew.body.events.map((e) => [e.type, e.status])).toEqual([['invoice.paid', 200], ['customer.subscription.updated', 200]]);
    expect(local.subscription(userId)!.periodStart).toBe(firstEnd);

    expect((await post('fail')).body.events.map((e) => e.type)).toEqual(['invoice.payment_failed', 'customer.subscription.updated']);
    expect((await post('renew')).status).toBe(200); // recovery: the open invoice gets paid
    expect((await post('cancel')).status).toBe(200);
    wf = await eventually(() => workflowState(userId), (s) => s.cancelAtPeriodEnd === true);
    expect(wf.cancelAtPeriodEnd).toBe(true);
    expect((await post('resume')).status).toBe(200);
    expect((await post('cancel')).status).toBe(200);
    expect((await post('expire')).body.events.map((e) => e.type)).toEqual(['customer.subscription.deleted']);

    wf = await eventually(() => workflowState(userId), (s) => s.payment === 'ended');
    expect(wf).toMatchObject({ payment: 'ended', cancelAtPeriodEnd: true });
    const invoices = (await dbState(userId)).invoices;
    expect(invoices.map((i) => i.status)).toEqual(['paid', 'paid', 'paid']);
    expect(wf.deliveries).toBe(wf.eventIds.length);
  });

  test('a checkout paid by SEPA Direct Debit completes unpaid; the debit succeeds or fails days later, as Stripe reports it', async () => {
    const post = (userId: string, action: string) => fetch(`${baseUrl}/local-billing/dev/${userId}/${action}`, { method: 'POST' })
      .then(async (r) => ({ status: r.status, body: (await r.json()) as { events?: { type: string; status: number }[]; error?: string } }));
    const payBySepa = async (userId: string) => {
      const checkout = await local.sessions.createCheckoutSession({ userId, email: 'sepa@example.com', plan: 'starter', requestId: 'sepa' });
      expect(await (await fetch(checkout.url)).text()).toContain('SEPA Direct Debit');
      const paid = await fetch(`${checkout.url}/pay`, { method: 'POST', body: new URLSearchParams({ method: 'sepa_debit' }), redirect: 'manual' });
      expect(paid.status).toBe(303);
    };

    const payer = await newUser();
    await payBySepa(payer);
    let wf = await eventually(() => workflowState(payer), (s) => s.eventIds.length === 2);
    expect(wf).toMatchObject({ status: 'incomplete', checkoutPaid: false, payment: null });
    expect((await dbState(payer)).invoices).toEqual([]);
    expect(await post(payer, 'renew')).toMatchObject({ status: 409, body: { error: expect.stringMatching(/still pending/) } });
    const settled = await post(payer, 'debit_paid');
    expect(settled.body.events!.map((e) => [e.type, e.status])).toEqual([
      ['checkout.session.async_payment_succeeded', 200], ['invoice.paid', 200], ['customer.subscription.updated', 200],
    ]);
    wf = await eventually(() => workflowState(payer), (s) => s.eventIds.length === 5);
    expect(wf).toMatchObject({ status: 'active', checkoutPaid: true, payment: 'paid', plan: 'starter' });
    expect((await dbState(payer)).invoices.map((i) => i.status)).toEqual(['paid']);
    expect(local.subscription(payer)!.status).toBe('active');

    const bounced = await newUser();
    await payBySepa(bounced);
    expect((await post(bounced, 'debit_failed')).body.events!.map((e) => e.type)).toEqual([
      'checkout.session.async_payment_failed', 'invoice.payment_failed', 'customer.subscription.updated',
    ]);
    wf = await eventually(() => workflowState(bounced), (s) => s.eventIds.length === 5);
    expect(wf).toMatchObject({ status: 'incomplete_expired', checkoutPaid: false, payment: 'failed' });
    expect((await dbState(bounced)).invoices.map((i) => i.status)).toEqual(['open']);
    expect(await post(bounced, 'renew')).toMatchObject({ status: 409, body: { error: expect.stringMatching(/never started/) } });
  });

  test('the checkout refuses a payment method it does not offer', async () => {
    const checkout = await local.sessions.createCheckoutSession({ userId: await newUser(), email: 'x@example.com', plan: 'starter', requestId: 'm' });
    expect((await fetch(`${checkout.url}/pay`, { method: 'POST', body: new URLSearchParams({ method: 'bitcoin' }), redirect: 'manual' })).status).toBe(400);
  });

  test('the dev trigger refuses a user without a local subscription', async () => {
    const res = await fetch(`${baseUrl}/local-billing/dev/${randomUUID()}/renew`, { method: 'POST' });
    expect(res.status).toBe(409);
  });
});

/**
 * The billing story end to end, through the real webhook path and the real lifecycle workflow: local billing
 * sends signed Stripe events → POST /webhooks/stripe → PostgreSQL → signalWithStart → the customer
 * lifecycle on the Temporal dev server (activities are the workflow-test doubles: the cloud,
 * backups and mail are not the subject here). Days are compressed so grace periods pass in seconds.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import express from 'express';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createTemporalBillingDelivery } from '../../activities/billing/delivery.ts';
import { createPlans } from '../../activities/billing/plans.ts';
import { createLocalBilling, type LocalBilling } from '../../api/local-billing/index.ts';
import { createStripeWebhookRouter } from '../../api/webhooks/stripe.ts';
import { createUser } from '../../db/repositories/users.ts';
import { findCustomer } from '../../db/repositories/customers.ts';
import { customerWorkflowStart } from '../../lib/lifecycle-client.ts';
import { createLogger } from '../../lib/log.ts';
import { rootDir } from '../../scripts/services/paths.ts';
import { stateQuery, type LifecycleView } from '../../workflows/messages.ts';
import { createLifecycleDoubles } from '../doubles/lifecycle-activities.ts';
import { useTestDatabase } from '../support/db.ts';

const database = useTestDatabase({ name: 'billing_story' });
const plans = createPlans();
const secret = `whsec_${randomBytes(24).toString('hex')}`;
const taskQueue = `billing-story-${randomBytes(4).toString('hex')}`;
const log = createLogger('test', 'silent');
/** One lifecycle "day" is 5 s here: the 7-day grace after a failed payment lasts 35 s. */
const dayMs = 5_000;

let connection: Connection;
let nativeConnection: NativeConnection;
let client: Client;
let worker: Worker;
let workerRun: Promise<void>;
let server: Server;
let local: LocalBilling;
const doubles = createLifecycleDoubles();

beforeAll(async () => {
  const address = process.env.TEMPORAL_ADDRESS!;
  connection = await Connection.connect({ address });
  client = new Client({ connection });
  nativeConnection = await NativeConnection.connect({ address });
  worker = await Worker.create({
    connection: nativeConnection, taskQueue, workflowsPath: path.join(rootDir, 'workflows', 'index.ts'), activities: doubles.activities,
  });
  workerRun = worker.run();
  const start = customerWorkflowStart({ taskQueue, plans, overrides: { dayMs } });
  const app = express();
  app.use(createStripeWebhookRouter({ db: database.db, plans, delivery: createTemporalBillingDelivery({ client, ...start }), webhookSecret: secret, log }));
  server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
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

async function until(userId: string, what: string, done: (v: LifecycleView) => boolean, timeoutMs = 30_000): Promise<LifecycleView> {
  const handle = client.workflow.getHandle(`customer-${userId}`);
  const deadline = Date.now() + timeoutMs;
  let last: LifecycleView | undefined;
  while (Date.now() < deadline) {
    last = await handle.query(stateQuery).catch(() => undefined);
    if (last && done(last)) return last;
    await sleep(200);
  }
  throw new Error(`timed out waiting for ${what}; last state: ${JSON.stringify(last && { stage: last.stage, willRenew: last.willRenew, timeline: last.timeline.slice(-5) })}`);
}

test('checkout → paid → renewal → payment failed → recovered → canceled at period end → expired drives the lifecycle', async () => {
  const user = await createUser(database.db, { email: `story-${randomUUID()}@example.com`, passwordHash: 'x', name: 'Story' });
  const checkout = await local.sessions.createCheckoutSession({ userId: user.id, email: user.email, plan: 'pro', requestId: 'story-1' });
  await local.pay(checkout.id);
  let view = await until(user.id, 'active after checkout', (v) => v.stage === 'active');
  expect(view).toMatchObject({ plan: 'pro', willRenew: true });
  const firstEnd = view.accessEndsAt!;
  expect(Date.parse(firstEnd)).toBeGreaterThan(Date.now() + 29 * 86_400_000);

  await local.trigger(user.id, 'renew');
  view = await until(user.id, 'the renewed period', (v) => v.accessEndsAt !== firstEnd);
  expect(view).toMatchObject({ stage: 'active', willRenew: true });
  expect(Date.parse(view.accessEndsAt!)).toBeGreaterThan(Date.parse(firstEnd));

  await local.trigger(user.id, 'fail');
  view = await until(user.id, 'past due', (v) => v.stage === 'past_due');
  expect(view.willRenew).toBe(false);

  await local.trigger(user.id, 'renew');
  view = await until(user.id, 'recovered', (v) => v.stage === 'active' && v.willRenew);

  await local.trigger(user.id, 'cancel');
  view = await until(user.id, 'canceled at period end', (v) => !v.willRenew);
  expect(view.stage).toBe('active');

  await local.trigger(user.id, 'expire');
  view = await until(user.id, 'expired', (v) => v.stage === 'expired');
  expect(view.server).toBeNull();
  expect(view.dataKeptUntil).not.toBeNull();
  // The stage turns expired just before the expired mail goes out.
  for (let i = 0; i < 50 && !doubles.mails.some((m) => m.kind === 'expired'); i++) await sleep(200);

  const steps = doubles.steps();
  expect(steps.slice(0, 4)).toEqual(['mail welcome', 'ensureServer cx33@nbg1', 'setupAssistant', 'mail server_ready']);
  // No delete without the verified final backup right before it.
  const del = steps.findIndex((s) => s.startsWith('deleteServer'));
  expect(steps.slice(del - 1, del + 1)).toEqual([expect.stringMatching(/^createBackup final/), expect.stringMatching(/^deleteServer/)]);
  expect(steps.filter((s) => s.startsWith('ensureServer'))).toHaveLength(1);
  expect(doubles.mails.map((m) => m.kind)).toEqual(expect.arrayContaining(['welcome', 'server_ready', 'expired']));
  const mailKeys = doubles.mails.map((m) => m.idempotencyKey);
  expect(new Set(mailKeys).size).toBe(mailKeys.length);

  // The webhook recorded every event once, each marked processed.
  const events = await database.db.selectFrom('stripeEvents').select(['eventId', 'processedAt']).execute();
  expect(events.length).toBeGreaterThanOrEqual(10);
  expect(events.every((e) => e.processedAt !== null)).toBe(true);
  expect((await findCustomer(database.db, user.id))?.stripeCustomerId).toMatch(/^cus_/);
});

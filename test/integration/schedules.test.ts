import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { ensureSchedules, scheduleIds } from '../../worker/schedules.ts';

let connection: Connection;
let client: Client;

beforeAll(async () => {
  // The integration tier's own dev server: no other suite creates these fleet-wide schedules.
  connection = await Connection.connect({ address: process.env.TEMPORAL_ADDRESS! });
  client = new Client({ connection });
});
afterAll(async () => {
  await connection?.close();
});

test('worker start creates each schedule once, and leaves an existing one alone', async () => {
  expect(await ensureSchedules(client, 'berth')).toEqual({ prune: 'created', reconciliation: 'created' });
  const handle = client.schedule.getHandle(scheduleIds.prune);
  await handle.pause('an operator paused it');
  expect(await ensureSchedules(client, 'berth')).toEqual({ prune: 'exists', reconciliation: 'exists' });
  const described = await handle.describe();
  expect(described.action).toMatchObject({ type: 'startWorkflow', workflowType: 'pruneExpiredBackups', taskQueue: 'berth' });
  expect(described.spec.calendars?.[0]).toMatchObject({ hour: [{ start: 3, end: 3, step: 1 }], minute: [{ start: 17, end: 17, step: 1 }] });
  // The operator's pause survives a worker restart.
  expect(described.state.paused).toBe(true);
});

test('the Stripe reconciliation schedule runs every 15 minutes', async () => {
  await ensureSchedules(client, 'berth');
  const described = await client.schedule.getHandle(scheduleIds.reconciliation).describe();
  expect(described.action).toMatchObject({ type: 'startWorkflow', workflowType: 'stripeReconciliation', taskQueue: 'berth' });
  expect(described.spec.intervals?.[0]?.every).toBe(15 * 60_000);
});

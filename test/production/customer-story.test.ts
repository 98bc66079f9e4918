/**
 * The customer story through Berth in production's shape (test/support/production-stack.ts): a Temporal
 * cluster on PostgreSQL from temporal.yaml, two workers and two web processes. The customer signs up and
 * pays through one web process and follows the rest through the other; the worker running the
 * provisioning is killed, later the worker running a backup: the other worker finishes each, exactly
 * one server exists, and nothing is lost (the data written before the backup comes back on the server
 * restored after expiry and renewal).
 */
import { randomBytes } from 'node:crypto';
import { chown, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, inject, test } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import pg from 'pg';
import { Client, Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import type { ManagedProcess } from '../../lib/process.ts';
import { launchBrowser, registerAccount } from '../support/browser.ts';
import { fileSink, startProductionWorker } from '../support/production-stack.ts';
import { errorMessage } from '../../lib/errors.ts';
import { lifecycleWorkflowId } from '../../workflows/messages.ts';

const stack = inject('production');
const [webA, webB] = stack.webUrls as [string, string];
let browser: Browser;
let connection: Connection;
let client: Client;
let db: pg.Client;
const extraWorkers: ManagedProcess[] = [];
const stackLog = fileSink(stack.logFile);
const alive = new Set(stack.workerPids);
const log = (line: string) => process.stdout.write(`[production] ${line}\n`);

beforeAll(async () => {
  browser = await launchBrowser();
  connection = await Connection.connect({ address: stack.temporalAddress });
  client = new Client({ connection, namespace: stack.namespace });
  db = new pg.Client({ connectionString: stack.databaseUrl });
  await db.connect();
});
afterAll(async () => {
  await browser?.close();
  await connection?.close();
  await db?.end();
  await Promise.all(extraWorkers.map((w) => w.stop()));
  await stackLog.close();
});

/** The servers the local cloud holds for a customer, by the label provisioning puts on them. */
async function cloudServers(userId: string): Promise<{ id: number; status: string }[]> {
  const res = await fetch(`${stack.cloudEndpoint}/servers?label_selector=${encodeURIComponent(`berth-customer=${userId}`)}`, {
    headers: { authorization: `Bearer ${stack.cloudToken}` },
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { servers: { id: number; status: string }[] }).servers;
}

async function liveServerRows(userId: string): Promise<{ provider_id: number }[]> {
  return (await db.query<{ provider_id: number }>('select provider_id from servers where user_id = $1 and deleted_at is null', [userId])).rows;
}

/**
 * Waits until an activity of one of `types` runs on one of this stack's workers, then kills that worker
 * (SIGKILL: no shutdown, no last heartbeat). Returns the killed worker's pid.
 */
async function killWorkerRunning(workflowId: string, types: string[]): Promise<{ pid: number; activity: string }> {
  const deadline = Date.now() + 180_000;
  for (;;) {
    const { pendingActivities } = await client.workflow.getHandle(workflowId).describe().then((d) => d.raw);
    for (const a of pendingActivities ?? []) {
      const pid = Number(/^(\d+)@/.exec(a.lastWorkerIdentity ?? '')?.[1]);
      if (types.includes(a.activityType?.name ?? '') && a.state === temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
        && alive.has(pid) && a.lastWorkerIdentity === `${pid}@${hostname()}`) {
        process.kill(pid, 'SIGKILL');
        alive.delete(pid);
        log(`killed worker ${pid} while it ran ${a.activityType!.name} (attempt ${a.attempt})`);
        return { pid, activity: a.activityType!.name! };
      }
    }
    if (Date.now() > deadline) throw new Error(`no ${types.join('/')} activity ran on a worker of this stack within 180 s`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The identities of the workers whose attempts of `activityType` completed, from the workflow's history. */
async function completedBy(workflowId: string, activityType: string): Promise<string[]> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const scheduled = new Map<string, string>();
  const started = new Map<string, string>();
  const done: string[] = [];
  for (const e of history.events ?? []) {
    const id = String(e.eventId);
    if (e.activityTaskScheduledEventAttributes?.activityType?.name) scheduled.set(id, e.activityTaskScheduledEventAttributes.activityType.name);
    if (e.activityTaskStartedEventAttributes) started.set(String(e.activityTaskStartedEventAttributes.scheduledEventId), e.activityTaskStartedEventAttributes.identity ?? '');
    const c = e.activityTaskCompletedEventAttributes;
    if (c && scheduled.get(String(c.scheduledEventId)) === activityType) done.push(started.get(String(c.scheduledEventId)) ?? '');
  }
  return done;
}

/** What the workflow is waiting on, for a failure message: its pending activities and their last failures. */
async function pendingWork(workflowId: string): Promise<string> {
  const { pendingActivities } = await client.workflow.getHandle(workflowId).describe().then((d) => d.raw);
  return JSON.stringify((pendingActivities ?? []).map((a) => ({
    type: a.activityType?.name, state: a.state, attempt: a.attempt, worker: a.lastWorkerIdentity, failure: a.lastFailure?.message,
  })));
}

async function stageIs(page: Page, base: string, label: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    // A page that does not load in time (the machine is busy) is simply looked at again.
    const loaded = await page.goto(`${base}/dashboard`, { waitUntil: 'domcontentloaded', timeout: 60_000 }).then(() => true, () => false);
    const stage = loaded ? await page.getByTestId('stage').textContent({ timeout: 10_000 }).catch(() => null) : null;
    if (stage === label) return;
    if (Date.now() > deadline) {
      const workflowId = lifecycleWorkflowId(await db.query<{ id: string }>('select id from users order by created_at desc limit 1').then((r) => r.rows[0]!.id));
      throw new Error(`the dashboard still shows "${stage}" after ${timeoutMs / 1000} s, not "${label}"; pending: ${await pendingWork(workflowId)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

async function checkout(page: Page): Promise<void> {
  await page.goto(`${webA}/billing`);
  await page.getByRole('button', { name: 'Subscribe to Starter' }).click();
  await page.waitForURL('**/local-billing/checkout/**');
  await page.getByTestId('local-pay').click();
  await page.waitForURL('**/billing?notice=success');
}

test('sign up → pay → server ready → backup → expiry → renewal → restore, with a worker killed during provisioning and during a backup', async () => {
  const page = await browser.newPage();
  // Two workers, two web processes, a Temporal cluster and PostgreSQL on two cores: pages can be slow.
  page.setDefaultTimeout(120_000);
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(err.message));
  const email = `ada.${Date.now()}@example.com`;

  // Sign up and pay through web A.
  await registerAccount(page, webA, { name: 'Ada Lovelace', email, password: 'analytical engine 1843' }, stack.maildevUrl);
  const userId = (await db.query<{ id: string }>('select id from users where email = $1', [email])).rows[0]!.id;
  const workflowId = lifecycleWorkflowId(userId);
  await checkout(page);

  // Provisioning: kill the worker that runs it. The other takes the activity over once its heartbeat times out.
  const first = await killWorkerRunning(workflowId, ['ensureServer', 'setupAssistant']);
  const survivor = [...alive][0]!;
  // The rest of the story is followed through web B (the session cookie is the same site's).
  await stageIs(page, webB, 'Active', 420_000);
  expect(await completedBy(workflowId, first.activity)).toEqual([`${survivor}@${hostname()}`]);
  const servers = await cloudServers(userId);
  expect(servers).toHaveLength(1);
  expect((await liveServerRows(userId)).map((r) => Number(r.provider_id))).toEqual([servers[0]!.id]);
  const firstServer = servers[0]!.id;

  // The customer's data: a file of theirs in the assistant's state, big enough that a backup takes a while.
  const stateDir = path.join(stack.cloudDataDir, 'servers', String(firstServer), 'disk', 'home', 'berth', '.openclaw');
  const owner = await stat(stateDir);
  const data = randomBytes(32 * 1024 * 1024);
  await mkdir(path.join(stateDir, 'notes'), { recursive: true });
  await writeFile(path.join(stateDir, 'notes', 'journal.bin'), data);
  await chown(path.join(stateDir, 'notes'), owner.uid, owner.gid);
  await chown(path.join(stateDir, 'notes', 'journal.bin'), owner.uid, owner.gid);

  // Two workers again, then a backup on demand from web B whose worker is killed mid-way.
  const replacement = await startProductionWorker(stack, 'worker-3', stackLog.sink);
  extraWorkers.push(replacement);
  alive.add(replacement.pid);
  await page.goto(`${webB}/dashboard`);
  await page.getByRole('button', { name: 'Back up now' }).click();
  const second = await killWorkerRunning(workflowId, ['createBackup']);
  const [other] = [...alive];
  const answer = page.locator('p[role="status"].notice, p[role="status"].error');
  await answer.waitFor({ timeout: 600_000 }).catch(async (err: unknown) => {
    throw new Error(`no answer to "Back up now": ${errorMessage(err)}; pending: ${await pendingWork(workflowId)}`);
  });
  expect(await answer.textContent()).toMatch(/^Backup done and verified \(\d+\.\d MB\)\.$/);
  expect(await completedBy(workflowId, 'createBackup')).toEqual([`${other}@${hostname()}`]);
  expect(second.pid).not.toBe(other);
  const backups = (await db.query<{ status: string; verified_at: Date | null }>('select status, verified_at from backups where user_id = $1', [userId])).rows;
  expect(backups.filter((b) => b.status === 'completed' && b.verified_at !== null)).toHaveLength(1);

  // Expiry: Stripe's subscription.deleted, through the local billing of web A. A final verified backup, then the server goes.
  const expired = await fetch(`${webA}/local-billing/dev/${userId}/expire`, { method: 'POST', headers: { accept: 'application/json' } });
  expect(expired.status).toBe(200);
  await stageIs(page, webB, 'Ended', 300_000);
  expect(await cloudServers(userId)).toEqual([]);
  expect(await liveServerRows(userId)).toEqual([]);

  // Renewal: the customer subscribes again; a new server comes up with the latest verified backup restored.
  await checkout(page);
  await stageIs(page, webB, 'Active', 420_000);
  const renewed = await cloudServers(userId);
  expect(renewed).toHaveLength(1);
  expect(renewed[0]!.id).not.toBe(firstServer);
  const restored = path.join(stack.cloudDataDir, 'servers', String(renewed[0]!.id), 'disk', 'home', 'berth', '.openclaw', 'notes', 'journal.bin');
  expect((await readFile(restored)).equals(data)).toBe(true);

  // Every notification once, though workers died mid-way: each mail caught is one sent key of the log.
  const mails = (await (await fetch(`${stack.maildevUrl}/api/email`)).json()) as { subject: string; to: { address: string }[] }[];
  const subjects = mails.filter((m) => m.to.some((t) => t.address === email)).map((m) => m.subject).sort();
  const sent = (await db.query<{ subject: string }>("select subject from email_log where recipient = $1 and status = 'sent'", [email])).rows;
  expect(subjects).toEqual(sent.map((r) => r.subject).sort());
  expect(subjects.filter((s) => s === 'Welcome to Berth')).toHaveLength(1);
  expect(subjects).toContain('Your Berth server is ready');
  expect(errors).toEqual([]);
});

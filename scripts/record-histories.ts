/**
 * Records the customer lifecycle's main paths as real histories into test/histories/, for the
 * replay tier. Starts its own Temporal CLI dev server (free ports, a throw-away SQLite file, the
 * lifecycle's search attributes), runs a worker over the in-memory doubles, drives each path with
 * compressed timings (one "day" = DAY_MS), saves each history as JSON, and stops everything.
 *
 *   node scripts/record-histories.ts            # all paths
 *   node scripts/record-histories.ts new-customer cancel-expire-renew
 *
 * Re-record after an intended change of the workflow's commands (and keep old histories that
 * running workflows still have, behind `patched()`), never to make a replay failure go away.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, Connection, ScheduleAlreadyRunning, type WorkflowHandle, type WorkflowHandleWithSignaledRunId } from '@temporalio/client';
import proto from '@temporalio/proto';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { customerLifecycle } from '../workflows/customer-lifecycle.ts';
import { pruneExpiredBackups, pruneScheduleId } from '../workflows/prune-schedule.ts';
import { approveDeletionWithoutBackupUpdate, backupNowUpdate, billingEventSignal, powerOffUpdate, stateQuery, userActivitySignal, type BillingEvent } from '../workflows/messages.ts';
import { defaultLifecycleConfig, type LifecycleConfig } from '../workflows/deadlines.ts';
import { createLifecycleDoubles, type LifecycleDoubles } from '../test/doubles/lifecycle-activities.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outDir = path.join(root, 'test/histories');
const temporalBin = process.env.TEMPORAL_CLI ?? path.join(root, '.cache/bin/temporal');
const DAY_MS = 400;
const taskQueue = 'record-histories';

/** Compressed production timings: same offsets, one "day" = DAY_MS. */
const compressed: Partial<LifecycleConfig> = {
  dayMs: DAY_MS,
  // Long retention so an "expired" stage lasts long enough to be seen; retention-purged uses the real ones.
  plans: Object.fromEntries(Object.entries(defaultLifecycleConfig.plans).map(([plan, c]) => [plan, { ...c, retentionDays: 1_000 }])) as LifecycleConfig['plans'],
  idle: { afterMs: null, policy: 'stop' },
  dailyBackupEveryMs: null,
  finalBackupRetry: { initialMs: DAY_MS, maxMs: 4 * DAY_MS },
  provisioningRetryMs: DAY_MS,
};

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const iso = (ms: number) => new Date(ms).toISOString();

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 30_000, debug?: () => Promise<unknown>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${debug ? `: ${JSON.stringify(await debug().catch(String))}` : ""}`);
    await sleep(100);
  }
}

interface Ctx {
  client: Client;
  doubles: LifecycleDoubles;
  start(id: string, config: Partial<LifecycleConfig>, first?: BillingEvent): Promise<WorkflowHandleWithSignaledRunId<typeof customerLifecycle>>;
  stage(handle: WorkflowHandle<typeof customerLifecycle>, stage: string): Promise<void>;
}

const ev = (eventId: string, type: BillingEvent['type'], fields: Omit<BillingEvent, 'eventId' | 'type' | 'created'> = {}, createdMs = Date.now()): BillingEvent =>
  ({ eventId, type, created: iso(createdMs), ...fields });

/** Each path ends with its workflow completed or left running; the recorder saves every run of it. */
const scenarios: Record<string, (ctx: Ctx) => Promise<WorkflowHandleWithSignaledRunId<typeof customerLifecycle>>> = {
  'new-customer': async ({ start, stage }) => {
    const h = await start('rec-new', compressed);
    await h.signal(billingEventSignal, ev('evt_new_1', 'checkout_completed', { accessEndsAt: iso(Date.now() + 30 * DAY_MS), plan: 'starter' }));
    await stage(h, 'active');
    return h;
  },
  'auto-renew': async ({ start, stage }) => {
    const h = await start('rec-renew', compressed, ev('evt_ren_1', 'checkout_completed', { accessEndsAt: iso(Date.now() + 10 * DAY_MS), plan: 'pro' }));
    await stage(h, 'active');
    for (let i = 2; i <= 3; i++) {
      await sleep(8 * DAY_MS);
      await h.signal(billingEventSignal, ev(`evt_ren_${i}`, 'invoice_paid', { accessEndsAt: iso(Date.now() + 10 * DAY_MS) }));
    }
    await sleep(DAY_MS);
    return h;
  },
  'cancel-expire-renew': async ({ start, stage }) => {
    const h = await start('rec-cancel', compressed, ev('evt_can_1', 'checkout_completed', { accessEndsAt: iso(Date.now() + 10 * DAY_MS), plan: 'starter' }));
    await stage(h, 'active');
    await h.signal(billingEventSignal, ev('evt_can_2', 'subscription_updated', { cancelAtPeriodEnd: true }));
    await h.signal(billingEventSignal, ev('evt_can_2', 'subscription_updated', { cancelAtPeriodEnd: true }));
    await stage(h, 'expired');
    await h.signal(billingEventSignal, ev('evt_can_3', 'checkout_completed', { accessEndsAt: iso(Date.now() + 30 * DAY_MS), cancelAtPeriodEnd: false }));
    await stage(h, 'active');
    return h;
  },
  'retention-purged': async ({ start }) => {
    const h = await start('rec-purge', { ...compressed, plans: defaultLifecycleConfig.plans }, ev('evt_pur_1', 'checkout_completed', { accessEndsAt: iso(Date.now() + 2 * DAY_MS), plan: 'starter', cancelAtPeriodEnd: true }));
    await h.result();
    return h;
  },
  'payment-failed-recovered-then-grace-over': async ({ start, stage }) => {
    const h = await start('rec-pay', compressed, ev('evt_pay_1', 'checkout_completed', { accessEndsAt: iso(Date.now() + 30 * DAY_MS), plan: 'starter' }));
    await stage(h, 'active');
    await h.signal(billingEventSignal, ev('evt_pay_2', 'payment_failed'));
    await stage(h, 'past_due');
    await sleep(2 * DAY_MS);
    await h.signal(billingEventSignal, ev('evt_pay_3', 'invoice_paid', { accessEndsAt: iso(Date.now() + 30 * DAY_MS) }));
    await stage(h, 'active');
    await h.signal(billingEventSignal, ev('evt_pay_4', 'payment_failed'));
    await stage(h, 'expired');
    return h;
  },
  'idle-stop-wake-and-updates': async ({ start, stage }) => {
    const h = await start('rec-idle', { ...compressed, idle: { afterMs: 2 * DAY_MS, policy: 'stop' } },
      ev('evt_idl_1', 'checkout_completed', { accessEndsAt: iso(Date.now() + 60 * DAY_MS), plan: 'starter' }));
    await stage(h, 'active');
    await stage(h, 'idle');
    await h.signal(userActivitySignal, { source: 'dashboard' });
    await stage(h, 'active');
    await h.executeUpdate(backupNowUpdate);
    await h.executeUpdate(powerOffUpdate);
    await stage(h, 'idle');
    return h;
  },
  'final-backup-failing-override': async ({ start, stage, doubles }) => {
    doubles.options.failBackups = { times: 1_000, reason: 'final', nonRetryable: true };
    const h = await start('rec-final', compressed, ev('evt_fin_1', 'checkout_completed', { accessEndsAt: iso(Date.now() + 2 * DAY_MS), plan: 'starter', cancelAtPeriodEnd: true }));
    await until('needs attention', async () => ((await h.query(stateQuery)).attentionReason?.includes('final backup failed 2') ? true : undefined), 60_000);
    await h.executeUpdate(approveDeletionWithoutBackupUpdate, { args: [{ approvedBy: 'recorder', reason: 'recorded history: deletion approved without backup' }] });
    await stage(h, 'expired');
    doubles.options.failBackups = undefined;
    return h;
  },
  'plan-downgrade-rebuild': async ({ start, stage, client }) => {
    // Pro (cx33, 80 GB) → Starter (40 GB types): refused in place, so backup → delete → new server → restore.
    const h = await start('rec-downgrade', compressed, ev('evt_dwn_1', 'checkout_completed', { accessEndsAt: iso(Date.now() + 60 * DAY_MS), plan: 'pro' }));
    await stage(h, 'active');
    await h.signal(billingEventSignal, ev('evt_dwn_2', 'subscription_updated', { plan: 'starter' }));
    await until('the rebuilt server', async () => {
      const view = await client.workflow.getHandle(h.workflowId).query(stateQuery);
      return view.stage === 'active' && view.server !== null && 'serverType' in view.server && view.server.serverType === 'cx23' ? true : undefined;
    }, 60_000);
    return h;
  },
  'hibernate-wake-fallback': async ({ start, stage, doubles }) => {
    const h = await start('rec-wake', { ...compressed, idle: { afterMs: 2 * DAY_MS, policy: 'hibernate' } },
      ev('evt_wak_1', 'checkout_completed', { accessEndsAt: iso(Date.now() + 60 * DAY_MS), plan: 'starter' }));
    await stage(h, 'active');
    await stage(h, 'idle');
    // The type the server had is gone while it sleeps: it wakes on the plan's next candidate.
    doubles.options.unavailableServerTypes = ['cx23'];
    await h.signal(userActivitySignal, { source: 'dashboard' });
    await stage(h, 'active');
    doubles.options.unavailableServerTypes = undefined;
    return h;
  },
  'renewal-failure-out-of-order': async ({ start, stage }) => {
    // Billing facts ordered one by one: the past_due update (R + 1 s) arrives before the older failure (R).
    const h = await start('rec-order', compressed, ev('evt_ord_1', 'checkout_completed', { accessEndsAt: iso(Date.now() + 10 * DAY_MS), plan: 'starter', paid: true }));
    await stage(h, 'active');
    const renewal = Date.now();
    await h.signal(billingEventSignal, ev('evt_ord_3', 'subscription_updated', { subscriptionStatus: 'past_due', accessEndsAt: iso(renewal + 20 * DAY_MS), cancelAtPeriodEnd: false }, renewal + 1000));
    await h.signal(billingEventSignal, ev('evt_ord_2', 'payment_failed', { accessEndsAt: iso(renewal) }, renewal));
    await stage(h, 'past_due');
    await stage(h, 'expired');
    return h;
  },
  'delayed-payment': async ({ start, stage }) => {
    // Access starts only on money: a SEPA checkout completes unpaid; the debit succeeds days later.
    const h = await start('rec-sepa', compressed, ev('evt_sep_1', 'checkout_completed', { plan: 'starter', paid: false }));
    await h.signal(billingEventSignal, ev('evt_sep_2', 'subscription_updated', { subscriptionStatus: 'incomplete', accessEndsAt: iso(Date.now() + 30 * DAY_MS), plan: 'starter', cancelAtPeriodEnd: false }));
    await sleep(3 * DAY_MS);
    await stage(h, 'awaiting_payment');
    await h.signal(billingEventSignal, ev('evt_sep_3', 'checkout_completed', { plan: 'starter', paid: true }));
    await h.signal(billingEventSignal, ev('evt_sep_4', 'invoice_paid', { accessEndsAt: iso(Date.now() + 27 * DAY_MS), plan: 'starter' }));
    await stage(h, 'active');
    return h;
  },
  'purged-then-next-life': async ({ start, stage, doubles }) => {
    // A re-subscription that arrives while the customer is purged starts the next life (a second run).
    let reached!: () => void;
    let release!: () => void;
    const purging = new Promise<void>((resolve) => { reached = resolve; });
    const released = new Promise<void>((resolve) => { release = resolve; });
    doubles.options.holdAudit = async (action) => {
      if (action !== 'customer_purged') return;
      reached();
      await released;
    };
    const h = await start('rec-next', { ...compressed, plans: defaultLifecycleConfig.plans },
      ev('evt_nxt_1', 'checkout_completed', { accessEndsAt: iso(Date.now() + 2 * DAY_MS), plan: 'starter', cancelAtPeriodEnd: true }));
    await purging;
    await h.signal(billingEventSignal, ev('evt_nxt_2', 'checkout_completed', { accessEndsAt: iso(Date.now() + 30 * DAY_MS), plan: 'starter', cancelAtPeriodEnd: false, paid: true }));
    release();
    doubles.options.holdAudit = undefined;
    await stage(h, 'active');
    return h;
  },
  'continue-as-new': async ({ start, stage }) => {
    const h = await start('rec-can', { ...compressed, dailyBackupEveryMs: DAY_MS / 2, maxHistoryEvents: 120 },
      ev('evt_can_a', 'checkout_completed', { accessEndsAt: iso(Date.now() + 100 * DAY_MS), plan: 'starter' }));
    await stage(h, 'active');
    await until('a continue-as-new', async () => ((await h.describe()).runId !== h.signaledRunId ? true : undefined), 120_000);
    await sleep(2 * DAY_MS);
    return h;
  },
};

async function main(): Promise<void> {
  const wanted = process.argv.slice(2);
  const names = wanted.length > 0 ? wanted : Object.keys(scenarios);
  const [port, httpPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
  const dataDir = mkdtempSync(path.join(tmpdir(), 'berth-record-'));
  const server = spawn(temporalBin, [
    'server', 'start-dev', '--headless', '--ip', '127.0.0.1', '--port', String(port), '--http-port', String(httpPort), '--metrics-port', String(metricsPort),
    '--db-filename', path.join(dataDir, 'temporal.db'), '--log-level', 'error',
    '--search-attribute', 'CustomerId=Keyword', '--search-attribute', 'Plan=Keyword', '--search-attribute', 'Stage=Keyword',
    '--search-attribute', 'ServerId=Keyword', '--search-attribute', 'NeedsAttention=Bool',
  ], { stdio: ['ignore', 'inherit', 'inherit'] });
  const address = `127.0.0.1:${port}`;
  let worker: Worker | undefined;
  let workerRun: Promise<void> | undefined;
  try {
    Runtime.install({ logger: new DefaultLogger('WARN') });
    const connection = await until('the dev server', () => Connection.connect({ address }));
    const client = new Client({ connection });
    // Search attributes become visible to the frontend a moment after start.
    await until('search attributes', async () => {
      const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace: 'default' });
      return customAttributes && 'NeedsAttention' in customAttributes ? true : undefined;
    });
    const doubles = createLifecycleDoubles();
    worker = await Worker.create({
      connection: await NativeConnection.connect({ address }), taskQueue,
      workflowsPath: path.join(root, 'workflows/index.ts'), activities: doubles.activities,
    });
    workerRun = worker.run();

    // The prune Schedule, created twice to show creation is idempotent.
    for (let i = 0; i < 2; i++) {
      try {
        await client.schedule.create({
          scheduleId: pruneScheduleId, spec: { calendars: [{ hour: 3, minute: 17 }] },
          action: { type: 'startWorkflow', workflowType: pruneExpiredBackups, taskQueue, workflowId: 'prune-expired-backups' },
          policies: { overlap: 'SKIP' },
        });
      } catch (err) {
        if (!(err instanceof ScheduleAlreadyRunning)) throw err;
      }
    }

    const ctx: Ctx = {
      client, doubles,
      start: async (id, config, first) => {
        const customerId = `${id}-${Date.now()}`;
        const options = { workflowId: `customer-${customerId}`, taskQueue, args: [{ customerId, config }] as [Parameters<typeof customerLifecycle>[0]] };
        return first
          ? client.workflow.signalWithStart(customerLifecycle, { ...options, signal: billingEventSignal, signalArgs: [first] })
          : client.workflow.signalWithStart(customerLifecycle, { ...options, signal: userActivitySignal, signalArgs: [{ source: 'registration' }] });
      },
      stage: async (h, stage) => {
        await until(`stage ${stage}`, async () => ((await h.query(stateQuery)).stage === stage ? true : undefined), 60_000, () => h.query(stateQuery));
      },
    };
    mkdirSync(outDir, { recursive: true });
    for (const name of names) {
      const scenario = scenarios[name];
      if (!scenario) throw new Error(`unknown path ${name}; known: ${Object.keys(scenarios).join(', ')}`);
      const handle = await scenario(ctx);
      const { status } = await handle.describe();
      if (status.name === 'RUNNING') await handle.terminate('recorded');
      let runId: string | undefined = handle.signaledRunId;
      let index = 0;
      while (runId) {
        const history = await client.workflow.getHandle(handle.workflowId, runId).fetchHistory();
        const file = path.join(outDir, index === 0 ? `${name}.json` : `${name}.run${index + 1}.json`);
        writeFileSync(file, JSON.stringify(withoutStackTraces(proto.temporal.api.history.v1.History.fromObject(history).toJSON()), null, 1) + '\n');
        console.log(`recorded ${path.relative(root, file)} (${history.events?.length} events)`);
        runId = history.events?.at(-1)?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId ?? undefined;
        index += 1;
        if (index >= 2) break; // two runs of a continued workflow are enough to replay both kinds of start
      }
    }
    await client.schedule.getHandle(pruneScheduleId).delete();
  } finally {
    worker?.shutdown();
    await workerRun?.catch(() => undefined);
    server.kill('SIGTERM');
    await new Promise((resolve) => server.once('exit', resolve));
    rmSync(dataDir, { recursive: true, force: true });
  }
}

await main();

/**
 * Failures in a history carry the worker's stack traces, which name folders of the machine that
 * recorded them; replay never reads them, so they are left out of the committed files.
 */
function withoutStackTraces(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutStackTraces);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, k === 'stackTrace' ? '' : withoutStackTraces(v)]));
}

/**
 * Scale benchmarks on Berth's production shape (a Temporal cluster on PostgreSQL from temporal.yaml):
 *   node bench/scale.ts [idle] [webhooks] [prune]      (default: all three)
 *
 * - idle: start N customer lifecycles on one worker (BENCH_IDLE_RUNS, default
 *   "paid:1000,registered:1000,registered:10000": `paid` ones are active with their server, `registered`
 *   ones signed up and wait for payment), then let them idle. Worker RSS, the sticky cache hit rate when
 *   every customer acts once (a dashboard visit: one signal each; hits / workflow tasks), and Temporal's
 *   persistence load on PostgreSQL (transactions, rows written, WAL bytes, database size) per lifecycle:
 *   to start one, and per idle hour.
 * - webhooks: signed Stripe events POSTed to a running web process (node api/main.ts) by 50 concurrent
 *   deliveries, each event delivered twice: events/s, p50/p99 latency, and every effect exactly once
 *   (one stripe_events row and one invoice per event, one signal per event in each workflow's history).
 * - prune: the fleet-wide backup prune (pruneExpiredBackups, what the prune Schedule runs) over 10,000
 *   customers' backups in MinIO (BENCH_PRUNE_CUSTOMERS).
 *
 * Workflows run with in-memory activity doubles (test/doubles), so the numbers are Temporal's and the
 * workflow code's, not Hetzner's or SSH's. Results are printed as JSON; docs/benchmarks.md holds them.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import Stripe from 'stripe';
import { Client, Connection } from '@temporalio/client';
import { customerWorkflowStart } from '../lib/lifecycle-client.ts';
import { createPlans } from '../activities/billing/plans.ts';
import { billingEventSignal, userActivitySignal } from '../workflows/messages.ts';
import { writeWorkflowBundle } from '../worker/bundle.ts';
import { rootDir } from '../lib/paths.ts';
import { freePort, httpOk, startProcess, type LineSink, type ManagedProcess } from '../lib/process.ts';
import { startPostgres, postgresUrl, postgresUser, testSettings } from '../scripts/services/postgres.ts';
import { startTemporalCluster } from '../scripts/services/temporal-cluster.ts';
import { startMinio } from '../scripts/services/minio.ts';
import { buildEvent, buildInvoice, stripeId, type LocalSubscription } from '../api/local-billing/stripe-objects.ts';
import { createDb } from '../db/client.ts';
import { migrateToLatest } from '../db/migrate.ts';

const which = new Set(process.argv.slice(2).length ? process.argv.slice(2) : ['idle', 'webhooks', 'prune']);
const quiet: LineSink = () => {};
const say = (line: string) => process.stdout.write(`[bench] ${line}\n`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const results: Record<string, unknown> = {};

/** Calls `fn` again (up to 5 times, backing off) when the overloaded cluster times it out. */
async function retried<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (attempt >= 5) throw err;
      await sleep(1000 * attempt);
    }
  }
}

/** Runs `fn` over `items` with at most `limit` at once. */
async function pool<T>(items: T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  }));
}

async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024;
}

interface PgLoad { xacts: number; rowsWritten: number; walBytes: number; sizeBytes: number }
/** Temporal's two databases together: committed transactions, rows written, WAL and size so far. */
async function temporalLoad(adminUrl: string): Promise<PgLoad> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query('select pg_stat_force_next_flush()');
    const { rows } = await client.query<{ xacts: string; rows: string; size: string }>(`
      select sum(xact_commit) as xacts, sum(tup_inserted + tup_updated + tup_deleted) as rows,
             sum(pg_database_size(datname)) as size
      from pg_stat_database where datname in ('temporal', 'temporal_visibility')`);
    const wal = await client.query<{ lsn: string }>('select pg_current_wal_lsn() - \'0/0\'::pg_lsn as lsn');
    return { xacts: Number(rows[0]!.xacts), rowsWritten: Number(rows[0]!.rows), walBytes: Number(wal.rows[0]!.lsn), sizeBytes: Number(rows[0]!.size) };
  } finally {
    await client.end();
  }
}
const minus = (a: PgLoad, b: PgLoad) => ({ xacts: a.xacts - b.xacts, rowsWritten: a.rowsWritten - b.rowsWritten, walBytes: a.walBytes - b.walBytes, sizeBytes: a.sizeBytes - b.sizeBytes });
const per = (load: ReturnType<typeof minus>, n: number) => Object.fromEntries(Object.entries(load).map(([k, v]) => [k, Math.round((v / n) * 10) / 10]));

/** Sums a Prometheus counter (all label sets) from the worker's metrics page. */
async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(url)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) sum += Number(line.split(' ').at(-1));
  }
  return sum;
}

const dir = await mkdtemp(path.join(tmpdir(), 'berth-bench-scale-'));
const stops: (() => Promise<void>)[] = [];
try {
  say('starting PostgreSQL 15 and a Temporal cluster from temporal.yaml…');
  const postgres = await startPostgres({ dataDir: path.join(dir, 'postgres'), port: await freePort(), sink: quiet, settings: testSettings });
  stops.push(() => postgres.stop());
  const pgPort = Number(new URL(postgres.url).port);
  const temporal = await startTemporalCluster({ postgres: { port: pgPort, user: postgresUser }, namespace: 'berth', sink: quiet });
  stops.push(() => temporal.stop());
  const connection = await Connection.connect({ address: temporal.address });
  stops.push(() => connection.close());
  const client = new Client({ connection, namespace: 'berth' });
  const bundle = path.join(dir, 'workflows.js');
  await writeWorkflowBundle(bundle);
  const plans = createPlans();
  const adminUrl = postgresUrl(pgPort, 'postgres');

  const startWorker = async (taskQueue: string, extra: Record<string, string> = {}) => {
    const metricsPort = await freePort();
    let ready = '';
    const proc = await startProcess({
      name: 'worker', command: process.execPath, args: ['bench/support/lifecycle-worker.ts'], cwd: rootDir,
      sink: (_n, line) => {
        if (line.startsWith('ready')) ready = line;
        else if (/error|warn/i.test(line)) process.stderr.write(`[worker] ${line}\n`);
      },
      env: { ...process.env, TEMPORAL_ADDRESS: temporal.address, TEMPORAL_NAMESPACE: 'berth', TEMPORAL_TASK_QUEUE: taskQueue,
        WORKFLOW_BUNDLE: bundle, BENCH_METRICS_ADDRESS: `127.0.0.1:${metricsPort}`, ...extra },
      readyTimeoutMs: 60_000, ready: async () => ready !== '',
    });
    return { proc, metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`, ready };
  };
  const paidEvent = () => ({
    eventId: `evt_${randomBytes(10).toString('hex')}`, type: 'checkout_completed' as const, created: new Date().toISOString(),
    accessEndsAt: new Date(Date.now() + 30 * 86_400_000).toISOString(), plan: 'starter' as const,
  });
  /** Waits until `count` workflows on the task queue are in `stage` (visibility), or throws after `ms`. */
  const waitStage = async (taskQueue: string, stage: string, count: number, ms: number) => {
    const deadline = Date.now() + ms;
    for (;;) {
      const { count: active } = await client.workflow.count(`TaskQueue = '${taskQueue}' AND Stage = '${stage}'`);
      if (active >= count) return;
      if (Date.now() > deadline) throw new Error(`only ${active} of ${count} lifecycles ${stage} after ${ms / 1000} s`);
      await sleep(2000);
    }
  };

  if (which.has('idle')) {
    const runs = (process.env.BENCH_IDLE_RUNS ?? 'paid:1000,registered:1000,registered:10000').split(',').map((r) => {
      const [kind, size] = r.split(':');
      if ((kind !== 'paid' && kind !== 'registered') || !Number(size)) throw new Error(`BENCH_IDLE_RUNS: "${r}" is not paid:N or registered:N`);
      return { kind, n: Number(size) };
    });
    const idle: unknown[] = [];
    for (const { kind, n } of runs) {
      const taskQueue = `bench-idle-${kind}-${n}-${randomBytes(3).toString('hex')}`;
      const worker = await startWorker(taskQueue);
      const start = customerWorkflowStart({ taskQueue, plans });
      const ids = Array.from({ length: n }, () => randomUUID());
      const rssBefore = await rssMiB(worker.proc.pid);
      const before = await temporalLoad(adminUrl);
      say(`idle ${n}: starting ${n} ${kind} lifecycles (${worker.ready})…`);
      const t0 = Date.now();
      await pool(ids, 50, async (id) => {
        const common = { workflowId: `customer-${id}`, taskQueue, args: start.workflowArgs(id) };
        // What the app does: a paid checkout's webhook, or a registration.
        const event = paidEvent();
        await retried(() => (kind === 'paid'
          ? client.workflow.signalWithStart(start.workflowType, { ...common, signal: billingEventSignal, signalArgs: [event] })
          : client.workflow.signalWithStart(start.workflowType, { ...common, signal: userActivitySignal, signalArgs: [{ source: 'registration' }] })));
      });
      const startedS = (Date.now() - t0) / 1000;
      await waitStage(taskQueue, kind === 'paid' ? 'active' : 'awaiting_payment', n, 3_600_000);
      const activeS = (Date.now() - t0) / 1000;
      const afterStart = await temporalLoad(adminUrl);
      const rssActive = await rssMiB(worker.proc.pid);
      const idleSeconds = Number(process.env.BENCH_IDLE_SECONDS ?? 120);
      say(`idle ${n}: all ${kind} after ${activeS.toFixed(0)} s; idling ${idleSeconds} s…`);
      await sleep(idleSeconds * 1000);
      const afterIdle = await temporalLoad(adminUrl);
      const rssIdle = await rssMiB(worker.proc.pid);
      // Every customer acts once (a dashboard visit signals their workflow): hits and misses of the sticky cache.
      // A workflow task that is not a sticky hit replayed the history: a miss, or a sticky task that waited
      // past its schedule-to-start timeout and went to the shared queue.
      const tasksNow = () => metric(worker.metricsUrl, 'temporal_workflow_task_execution_latency_count');
      const hits0 = await metric(worker.metricsUrl, 'temporal_sticky_cache_hit');
      const tasks0 = await tasksNow();
      const t1 = Date.now();
      // At most BENCH_TOUCH_MAX customers (default 2,000), picked at random: the rate is what is measured.
      const touched = [...ids].sort(() => Math.random() - 0.5).slice(0, Number(process.env.BENCH_TOUCH_MAX ?? 2000));
      await pool(touched, 50, async (id) => {
        await retried(() => client.workflow.getHandle(`customer-${id}`).signal(userActivitySignal, { source: 'dashboard' }));
      });
      // Done when every touched customer's task ran and nothing more ran for 5 s.
      for (let last = -1, still = 0, i = 0; i < 900 && still < 5; i++) {
        const tasks = (await tasksNow()) - tasks0;
        still = tasks >= touched.length && tasks === last ? still + 1 : 0;
        last = tasks;
        await sleep(1000);
      }
      const hits = (await metric(worker.metricsUrl, 'temporal_sticky_cache_hit')) - hits0;
      const misses = (await tasksNow()) - tasks0 - hits;
      const row = {
        kind,
        lifecycles: n,
        maxCachedWorkflows: Number(/maxCachedWorkflows=(\d+)/.exec(worker.ready)?.[1]),
        startsPerSecond: Math.round(n / startedS),
        secondsUntilAllStarted: Math.round(activeS),
        workerRssMiB: { before: Math.round(rssBefore), allStarted: Math.round(rssActive), afterIdle: Math.round(rssIdle) },
        workerRssKiBPerLifecycle: Math.round(((rssIdle - rssBefore) * 1024) / n),
        touched: { customers: touched.length, seconds: Math.round((Date.now() - t1) / 1000), workflowTasks: hits + misses, stickyHits: hits, hitRate: Math.round((hits / Math.max(1, hits + misses)) * 1000) / 1000 },
        persistencePerLifecycleToStart: per(minus(afterStart, before), n),
        persistenceIdlePerLifecyclePerHour: per(minus(afterIdle, afterStart), (n * idleSeconds) / 3600),
      };
      say(JSON.stringify(row));
      idle.push(row);
      await worker.proc.stop();
    }
    results.idle = idle;
  }

  if (which.has('webhooks')) {
    const events = Number(process.env.BENCH_WEBHOOK_EVENTS ?? 1000);
    const customers = Number(process.env.BENCH_WEBHOOK_CUSTOMERS ?? 100);
    const concurrency = 50;
    const dbUrl = postgres.url;
    const db = createDb(dbUrl);
    await migrateToLatest(db);
    const taskQueue = 'berth';
    const worker = await startWorker(taskQueue);
    const port = await freePort();
    const secret = `whsec_${randomBytes(16).toString('hex')}`;
    const web: ManagedProcess = await startProcess({
      name: 'web', command: process.execPath, args: ['api/main.ts'], cwd: rootDir, sink: quiet,
      env: { ...process.env, BERTH_MODE: 'local', NODE_ENV: 'test', LOG_LEVEL: 'warn', PORT: String(port), DATABASE_URL: dbUrl, TEMPORAL_ADDRESS: temporal.address,
        TEMPORAL_NAMESPACE: 'berth', TEMPORAL_TASK_QUEUE: taskQueue, STRIPE_WEBHOOK_SECRET: secret, APP_URL: `http://127.0.0.1:${port}` },
      ready: () => httpOk(`http://127.0.0.1:${port}/healthz`),
    });
    const users = await Promise.all(Array.from({ length: customers }, async (_, i) =>
      (await db.insertInto('users').values({ email: `bench-${i}-${randomUUID()}@example.com`, passwordHash: 'x', name: `Bench ${i}` }).returning('id').executeTakeFirstOrThrow()).id));
    const now = Math.floor(Date.now() / 1000);
    // One invoice.paid per event, customers in turn, each a later period of that customer's subscription.
    const subs = users.map((userId): LocalSubscription => ({
      userId, email: null, plan: 'starter', priceId: plans.starter.stripePriceId, productId: 'prod_berth_starter',
      amountMinor: plans.starter.displayPrice.amountMinor, currency: plans.starter.displayPrice.currency,
      customerId: stripeId('cus'), subscriptionId: stripeId('sub'), itemId: stripeId('si'), status: 'active', created: now - 86_400,
      periodStart: now - 86_400, periodEnd: now + 30 * 86_400, cancelAtPeriodEnd: false, canceledAt: null, endedAt: null, latestInvoiceId: null,
    }));
    const bodies = Array.from({ length: events }, (_, i) => {
      const sub = subs[i % customers]!;
      const k = Math.floor(i / customers);
      const invoice = buildInvoice(sub, { id: stripeId('in'), status: 'paid', billingReason: k === 0 ? 'subscription_create' : 'subscription_cycle',
        periodStart: now + k * 60, periodEnd: now + 30 * 86_400 + k * 60, attemptCount: 1, created: now + k, nextPaymentAttempt: null }, 'http://127.0.0.1');
      return JSON.stringify(buildEvent('invoice.paid', invoice, { created: now + k }));
    });
    // Each event twice, shuffled: Stripe delivers at least once, in any order.
    const deliveries = [...bodies, ...bodies].map((b) => ({ b, r: Math.random() })).sort((x, y) => x.r - y.r).map((x) => x.b);
    const latencies: number[] = [];
    const statuses = new Map<number, number>();
    say(`webhooks: ${deliveries.length} deliveries of ${events} events for ${customers} customers, ${concurrency} at once…`);
    const t0 = Date.now();
    await pool(deliveries, concurrency, async (payload) => {
      const header = Stripe.webhooks.generateTestHeaderString({ payload, secret });
      const s = performance.now();
      const res = await fetch(`http://127.0.0.1:${port}/webhooks/stripe`, { method: 'POST', headers: { 'content-type': 'application/json', 'stripe-signature': header }, body: payload });
      await res.body?.cancel();
      latencies.push(performance.now() - s);
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
    });
    const seconds = (Date.now() - t0) / 1000;
    latencies.sort((a, b) => a - b);
    const q = (p: number) => Math.round(latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!);
    // Exactly once: rows, invoices, and the signals each workflow received.
    const recorded = await db.selectFrom('stripeEvents').select((eb) => [eb.fn.countAll<string>().as('n'), eb.fn.count<string>('processedAt').as('processed')]).executeTakeFirstOrThrow();
    const invoices = await db.selectFrom('invoices').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
    let signals = 0;
    const perEvent = new Map<string, number>();
    await pool(users, 10, async (userId) => {
      const history = await client.workflow.getHandle(`customer-${userId}`).fetchHistory();
      for (const e of history.events ?? []) {
        const signaled = e.workflowExecutionSignaledEventAttributes;
        if (signaled?.signalName !== billingEventSignal.name) continue;
        const data = signaled.input?.payloads?.[0]?.data;
        const id = data ? (JSON.parse(Buffer.from(data).toString('utf8')) as { eventId?: string }).eventId : undefined;
        if (!id) continue;
        signals++;
        perEvent.set(id, (perEvent.get(id) ?? 0) + 1);
      }
    });
    const row = {
      events, deliveries: deliveries.length, concurrency, customers, seconds: Math.round(seconds * 10) / 10,
      deliveriesPerSecond: Math.round(deliveries.length / seconds), eventsPerSecond: Math.round(events / seconds),
      latencyMs: { p50: q(0.5), p90: q(0.9), p99: q(0.99), max: Math.round(latencies.at(-1)!) },
      statuses: Object.fromEntries(statuses),
      exactlyOnce: {
        stripeEventRows: Number(recorded.n), processed: Number(recorded.processed), invoices: Number(invoices.n),
        signals, eventsSignaledMoreThanOnce: [...perEvent.values()].filter((c) => c > 1).length,
        ok: Number(recorded.n) === events && Number(recorded.processed) === events && Number(invoices.n) === events && signals === events && perEvent.size === events,
      },
    };
    say(JSON.stringify(row));
    results.webhooks = row;
    await web.stop();
    await worker.proc.stop();
    await db.destroy();
  }

  if (which.has('prune')) {
    results.prune = await (await import('./support/prune.ts')).benchPrune({
      databaseUrl: postgres.url, client, minio: await startMinio({ dataDir: path.join(dir, 'minio'), port: await freePort(), consolePort: await freePort(),
        accessKeyId: 'bench', secretAccessKey: randomBytes(16).toString('hex'), buckets: ['bench-prune'], sink: quiet }).then((m) => { stops.push(() => m.stop()); return m; }),
      customers: Number(process.env.BENCH_PRUNE_CUSTOMERS ?? 10_000), say,
    });
  }
  process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
} finally {
  for (const stop of stops.reverse()) await stop().catch(() => {});
  await rm(dir, { recursive: true, force: true });
}

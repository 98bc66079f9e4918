/**
 * The run command's supervisor: starts every part of Berth locally, in order, with readiness checks,
 * one combined log (a prefix per process) and a clean stop on Ctrl-C / SIGTERM that leaves no process.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import path from 'node:path';
import { startProcess, httpOk, prefixedSink, type ManagedProcess } from '../lib/process.ts';
import { buildWebIfNeeded } from './services/web-build.ts';
import { dataDir, rootDir } from '../lib/paths.ts';
import { startTemporalDevServer, workerPolling } from './services/temporal.ts';
import { startMinio } from './services/minio.ts';
import { startPostgres } from './services/postgres.ts';
import { startMaildev } from './services/maildev.ts';
import { localServices as env } from './services/local-defaults.ts';
import { localDefaults } from '../lib/config.ts';
import { errorMessage } from '../lib/errors.ts';

const sink = prefixedSink();
const say = (line: string) => sink('berth', line, 'stdout');
/** Said so that it stands out in the combined log: a part died and is being brought back. */
const shout = (line: string) => sink('berth', process.stdout.isTTY ? `\x1b[1;31m!! ${line}\x1b[0m` : `!! ${line}`, 'stderr');
const running: { name: string; stop(): Promise<void> }[] = [];
/** Parts still starting; stopAll waits for them (each stops itself once started). */
const inFlight = new Set<Promise<unknown>>();
let stopping = false;

let stopped: Promise<never> | undefined;

/** Stops everything once, in reverse order (the app first, the database last), then exits. */
function stopAll(code: number): Promise<never> {
  stopped ??= (async () => {
    stopping = true;
    say('stopping…');
    await Promise.allSettled([...inFlight]);
    for (const part of [...running].reverse()) {
      try {
        await part.stop();
        say(`stopped ${part.name}`);
      } catch (err) {
        say(`could not stop ${part.name}: ${errorMessage(err)}`);
      }
    }
    say('stopped');
    process.exit(code);
  })();
  return stopped;
}
process.on('SIGINT', () => void stopAll(0));
process.on('SIGTERM', () => void stopAll(0));

/** A started part: a child process itself, or a service that runs one (none: an external database). */
type Part = ManagedProcess | { stop(): Promise<void>; process?: ManagedProcess | null };

/** The child process a part runs, if any. */
function childOf(part: Part): ManagedProcess | null | undefined {
  return 'pid' in part ? (part as ManagedProcess) : (part as { process?: ManagedProcess | null }).process;
}

/** Restart back-off: 1 s, doubling up to 30 s; a part that stayed up for a minute starts again at 1 s. */
const restartDelayMs = (attempt: number) => Math.min(30_000, 1000 * 2 ** Math.max(0, attempt - 1));
const stableAfterMs = 60_000;

/**
 * Starts a part and supervises it as production's restart policy would: if its process exits on its
 * own, say so loudly and start it again with back-off, for as long as the run command runs. The
 * first start must succeed (a part that cannot start at all stops the run).
 */
async function step<T extends Part>(name: string, start: () => Promise<T>): Promise<T> {
  const started = Date.now();
  say(`starting ${name}…`);
  // Parts start side by side: one that finishes starting while the rest is being stopped stops itself,
  // and stopAll waits for that before the run command exits, so no process is left behind.
  const starting = (async () => {
    const part = await start();
    if (stopping) await part.stop().catch(() => {});
    return part;
  })();
  inFlight.add(starting);
  const first = await starting.finally(() => inFlight.delete(starting));
  if (stopping) return stopAll(0);
  let current: Part = first;
  running.push({ name, stop: () => current.stop() });
  say(`${name} ready (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  void (async () => {
    let attempt = 0;
    let upSince = Date.now();
    for (;;) {
      const child = childOf(current);
      if (!child) return;
      const code = await child.exited;
      if (stopping) return;
      const upMs = Date.now() - upSince;
      if (upMs >= stableAfterMs) attempt = 0;
      attempt += 1;
      shout(`${name} exited on its own (code ${code}) after ${(upMs / 1000).toFixed(0)} s; restarting in ${restartDelayMs(attempt) / 1000} s (restart ${attempt})`);
      for (;;) {
        await sleep(restartDelayMs(attempt));
        if (stopping) return;
        try {
          await current.stop().catch(() => {});
          current = await start();
          upSince = Date.now();
          say(`${name} is back (restart ${attempt})`);
          break;
        } catch (err) {
          attempt += 1;
          shout(`${name} could not be restarted: ${errorMessage(err)}; trying again in ${restartDelayMs(attempt) / 1000} s`);
        }
      }
    }
  })();
  return first;
}

try {
  const postgres = await step('postgres', () =>
    process.env.DATABASE_URL
      ? Promise.resolve({ url: process.env.DATABASE_URL, stop: async () => {} })
      : startPostgres({ dataDir: path.join(dataDir, 'postgres'), port: env.postgresPort, sink }));
  const [temporal, minio, maildev] = await Promise.all([
    step('temporal', () => startTemporalDevServer({ dataDir: path.join(dataDir, 'temporal'), port: env.temporalPort, uiPort: env.temporalUiPort, sink })),
    step('minio', () => startMinio({ dataDir: path.join(dataDir, 'minio'), port: env.minioPort, consolePort: env.minioConsolePort,
      accessKeyId: env.s3AccessKeyId, secretAccessKey: env.s3SecretAccessKey, buckets: [env.s3Bucket], sink })),
    step('maildev', () => startMaildev({ smtpPort: env.smtpPort, webPort: env.maildevWebPort, sink })),
    // The local Hetzner Cloud: each server it creates is a real sshd on its own 127.0.N.x address.
    step('cloud', () => startProcess({
      name: 'cloud', command: process.execPath, args: ['sim/hetzner/main.ts'], cwd: rootDir, sink,
      env: { ...process.env, HCLOUD_SIM_PORT: String(env.localCloudPort), HCLOUD_SIM_DATA_DIR: path.join(dataDir, 'cloud'), HCLOUD_SIM_TOKEN: localDefaults.HCLOUD_TOKEN },
      ready: () => httpOk(`http://127.0.0.1:${env.localCloudPort}/v1/locations`),
      stopTimeoutMs: 30_000,
    })),
  ]);
  const childEnv: NodeJS.ProcessEnv = {
    ...process.env,
    // Explicitly local: stand-ins and development secrets are allowed only in this mode.
    BERTH_MODE: 'local',
    DATABASE_URL: postgres.url,
    TEMPORAL_ADDRESS: temporal.address,
    AWS_ENDPOINT_URL_S3: minio.endpoint,
    AWS_ACCESS_KEY_ID: env.s3AccessKeyId,
    AWS_SECRET_ACCESS_KEY: env.s3SecretAccessKey,
    S3_BUCKET: env.s3Bucket,
    SMTP_URL: maildev.smtpUrl,
  };

  say('database: applying migrations…');
  const migrate = await startProcess({ name: 'migrate', command: process.execPath, args: ['db/cli.ts', 'up'], cwd: rootDir, env: childEnv, sink });
  if ((await migrate.exited) !== 0) throw new Error('migrations failed');
  await buildWebIfNeeded(sink);

  const namespace = process.env.TEMPORAL_NAMESPACE ?? 'default';
  const taskQueue = process.env.TEMPORAL_TASK_QUEUE ?? 'berth';
  await step('worker', () => startProcess({
    name: 'worker', command: process.execPath, args: ['worker/main.ts'], cwd: rootDir, env: childEnv, sink,
    readyTimeoutMs: 120_000, ready: () => workerPolling(temporal.address, namespace, taskQueue),
  }));
  await step('web', () => startProcess({
    name: 'web', command: process.execPath, args: ['api/main.ts'], cwd: rootDir, env: { ...childEnv, PORT: String(env.appPort), ASSISTANT_GATEWAY_HOST: 'server-address' }, sink,
    ready: () => httpOk(`http://localhost:${env.appPort}/healthz`),
  }));

  say('');
  say('Berth is running:');
  say(`  web app           http://localhost:${env.appPort}`);
  say(`  Temporal Web UI   ${temporal.uiUrl}`);
  say(`  mail catcher      ${maildev.webUrl}`);
  say(`  local checkout    http://localhost:${env.appPort}/local-billing/dev  (renew, fail, cancel, expire)`);
  say(`  local cloud       http://127.0.0.1:${env.localCloudPort}/v1  (Hetzner API; servers are sshd on 127.0.N.x)`);
  say(`  MinIO console     ${minio.consoleUrl}  (user ${env.s3AccessKeyId})`);
  say(`  PostgreSQL        ${postgres.url}`);
  say('Press Ctrl-C to stop everything. A part that dies on its own is restarted.');
} catch (err) {
  say(`start-up failed: ${errorMessage(err)}`);
  await stopAll(1);
}

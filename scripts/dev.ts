/**
 * The run command's supervisor: starts every part of Berth locally, in order, with readiness checks,
 * one combined log (a prefix per process) and a clean stop on Ctrl-C / SIGTERM that leaves no process.
 */
import path from 'node:path';
import { startProcess, httpOk, prefixedSink, type ManagedProcess } from './services/process.ts';
import { dataDir, rootDir } from './services/paths.ts';
import { startTemporalDevServer, workerPolling } from './services/temporal.ts';
import { startMinio } from './services/minio.ts';
import { startPostgres } from './services/postgres.ts';
import { startMaildev } from './services/maildev.ts';
import { buildWebIfNeeded } from './services/web-build.ts';
import { localServices as env } from './services/local-defaults.ts';
import { localDefaults } from '../lib/config.ts';

const sink = prefixedSink();
const say = (line: string) => sink('berth', line, 'stdout');
const running: { name: string; stop(): Promise<void> }[] = [];
/** Every child process started, watched so that one dying stops the rest. */
const managed: ManagedProcess[] = [];
let stopping = false;

let stopped: Promise<never> | undefined;

/** Stops everything once, in reverse order (the app first, the database last), then exits. */
function stopAll(code: number): Promise<never> {
  stopped ??= (async () => {
    stopping = true;
    say('stopping…');
    for (const part of [...running].reverse()) {
      try {
        await part.stop();
        say(`stopped ${part.name}`);
      } catch (err) {
        say(`could not stop ${part.name}: ${err instanceof Error ? err.message : String(err)}`);
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

async function step<T extends Part>(name: string, start: () => Promise<T>): Promise<T> {
  const started = Date.now();
  say(`starting ${name}…`);
  const part = await start();
  running.push({ name, stop: () => part.stop() });
  const child = 'pid' in part ? (part as ManagedProcess) : (part as { process?: ManagedProcess | null }).process;
  if (child) managed.push(child);
  say(`${name} ready (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  if (stopping) await stopAll(0);
  return part;
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
  say('Press Ctrl-C to stop everything.');
  // If a part dies on its own, stop the rest rather than run half a system.
  const died = await Promise.race(managed.map((m) => m.exited.then(() => m.name)));
  if (!stopping) {
    say(`${died} exited on its own; stopping the rest`);
    await stopAll(1);
  }
} catch (err) {
  say(`start-up failed: ${err instanceof Error ? err.message : String(err)}`);
  await stopAll(1);
}

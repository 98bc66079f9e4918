/**
 * A whole local Berth on free ports, for tiers that probe a running Berth while the run command's
 * fixed ports may be taken by another one: PostgreSQL, Temporal, MinIO, maildev, the local cloud,
 * migrations, the worker and the web server, each started directly with the run command's starters,
 * in local mode (said explicitly). Extra web processes with other settings can join the same stack.
 */
import path from 'node:path';
import { localDefaults } from '../../lib/config.ts';
import { freePort, httpOk, startProcess, type LineSink, type ManagedProcess } from '../../lib/process.ts';
import { rootDir } from '../../lib/paths.ts';
import { startPostgres, testSettings } from '../../scripts/services/postgres.ts';
import { startTemporalDevServer, workerPolling } from '../../scripts/services/temporal.ts';
import { startMinio } from '../../scripts/services/minio.ts';
import { startMaildev } from '../../scripts/services/maildev.ts';
import { buildWebIfNeeded } from '../../scripts/services/web-build.ts';

export interface BerthStack {
  /** The web app, e.g. http://localhost:41234. */
  appUrl: string;
  /** maildev's web page and REST API. */
  mailUrl: string;
  databaseUrl: string;
  temporalAddress: string;
  cloudEndpoint: string;
  webPid: number;
  workerPid: number;
  /** The environment the worker and web processes run with (without PORT and APP_URL). */
  appEnv: Record<string, string>;
  stop(): Promise<void>;
}

/** Starts everything in `dataDir`; on a failure to start, whatever did start is stopped. */
export async function startBerthStack(opts: { dataDir: string; sink: LineSink; webEnv?: Record<string, string> }): Promise<BerthStack> {
  const { dataDir, sink } = opts;
  const stops: (() => Promise<void>)[] = [];
  const started = <T extends { stop(): Promise<void> }>(part: T): T => {
    stops.push(() => part.stop());
    return part;
  };
  const stop = async () => {
    for (const s of stops.reverse()) await s().catch(() => {});
  };
  try {
    const postgres = started(await startPostgres({ dataDir: path.join(dataDir, 'postgres'), port: await freePort(), sink, settings: testSettings }));
    const [temporal, minio, maildev, cloud] = await Promise.all([
      startTemporalDevServer({ dataDir: path.join(dataDir, 'temporal'), port: await freePort(), uiPort: null, sink }).then(started),
      startMinio({ dataDir: path.join(dataDir, 'minio'), port: await freePort(), consolePort: await freePort(),
        accessKeyId: localDefaults.AWS_ACCESS_KEY_ID, secretAccessKey: localDefaults.AWS_SECRET_ACCESS_KEY, buckets: [localDefaults.S3_BUCKET], sink }).then(started),
      startMaildev({ smtpPort: await freePort(), webPort: await freePort(), sink }).then(started),
      freePort().then(async (port) => ({
        port,
        process: started(await startProcess({
          name: 'cloud', command: process.execPath, args: ['sim/hetzner/main.ts'], cwd: rootDir, sink,
          env: { ...process.env, HCLOUD_SIM_PORT: String(port), HCLOUD_SIM_DATA_DIR: path.join(dataDir, 'cloud'), HCLOUD_SIM_TOKEN: localDefaults.HCLOUD_TOKEN },
          ready: () => httpOk(`http://127.0.0.1:${port}/v1/locations`), stopTimeoutMs: 30_000,
        })),
      })),
    ]);
    const cloudEndpoint = `http://127.0.0.1:${cloud.port}/v1`;
    const appEnv: Record<string, string> = {
      BERTH_MODE: 'local',
      DATABASE_URL: postgres.url,
      TEMPORAL_ADDRESS: temporal.address,
      AWS_ENDPOINT_URL_S3: minio.endpoint,
      HCLOUD_ENDPOINT: cloudEndpoint,
      SMTP_URL: maildev.smtpUrl,
      ASSISTANT_GATEWAY_HOST: 'server-address',
      LOG_LEVEL: 'info',
    };
    const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', ...appEnv };
    const migrate = await startProcess({ name: 'migrate', command: process.execPath, args: ['db/cli.ts', 'up'], cwd: rootDir, env, sink });
    if ((await migrate.exited) !== 0) throw new Error('migrations failed');
    await buildWebIfNeeded(sink);
    const worker = started(await startProcess({
      name: 'worker', command: process.execPath, args: ['worker/main.ts'], cwd: rootDir, env, sink,
      readyTimeoutMs: 120_000, ready: () => workerPolling(temporal.address, localDefaults.TEMPORAL_NAMESPACE, localDefaults.TEMPORAL_TASK_QUEUE),
    }));
    const web = await startWebProcess({ appEnv: { ...appEnv, ...opts.webEnv }, sink });
    stops.push(() => web.process.stop());
    return {
      appUrl: web.url, mailUrl: maildev.webUrl, databaseUrl: postgres.url, temporalAddress: temporal.address, cloudEndpoint,
      webPid: web.process.pid, workerPid: worker.pid, appEnv, stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * A web server (api/main.ts) on a free port, with `appEnv` (a stack's, plus any settings to try).
 * `url` is where to reach it; `origin` is its APP_URL's (a production-mode server has an https one,
 * as behind its TLS proxy), which browsers would send as Origin.
 */
export async function startWebProcess(opts: { appEnv: Record<string, string>; sink: LineSink; name?: string }): Promise<{ url: string; origin: string; process: ManagedProcess }> {
  const port = await freePort();
  const url = `http://localhost:${port}`;
  const appUrl = opts.appEnv.APP_URL ?? url;
  const proc = await startProcess({
    name: opts.name ?? 'web', command: process.execPath, args: ['api/main.ts'], cwd: rootDir, sink: opts.sink,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', ...opts.appEnv, PORT: String(port), APP_URL: appUrl },
    ready: () => httpOk(`http://127.0.0.1:${port}/healthz`),
  });
  return { url, origin: new URL(appUrl).origin, process: proc };
}

/**
 * A Temporal cluster as production runs it: the Temporal server (frontend, history, matching and worker
 * services in one process) on PostgreSQL, configured by the repository's temporal.yaml, its schemas
 * made by the same one-shot scripts docker-compose.yml runs (scripts/compose/). Only addresses and
 * secrets come from the environment, as temporal.yaml says.
 */
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { cacheDir, rootDir } from './paths.ts';
import net from 'node:net';
import { startProcess, type LineSink, type ManagedProcess } from './process.ts';
import { berthSearchAttributes } from './temporal.ts';

export interface TemporalCluster {
  /** The frontend, host:port (TEMPORAL_ADDRESS). */
  address: string;
  namespace: string;
  process: ManagedProcess;
  stop(): Promise<void>;
}

export interface StartTemporalClusterOptions {
  /** PostgreSQL on 127.0.0.1: port, and a role that may create databases. */
  postgres: { port: number; user: string; password?: string };
  namespace: string;
  sink?: LineSink;
  /** Where the server listens (default 127.0.0.1: nothing outside this machine reaches it). */
  bindIp?: string;
}

/** Runs a one-shot script of scripts/compose/ with the cached tools first on PATH; rejects on a non-zero exit. */
async function runScript(script: string, env: NodeJS.ProcessEnv, sink: LineSink | undefined): Promise<void> {
  const proc = await startProcess({
    name: path.basename(script, '.sh'), command: '/bin/sh', args: [path.join(rootDir, 'scripts', 'compose', script)], cwd: rootDir, sink,
    env: { ...process.env, ...env, PATH: `${path.join(cacheDir, 'bin')}:${process.env.PATH ?? ''}` },
  });
  const code = await proc.exited;
  if (code !== 0) throw new Error(`scripts/compose/${script} exited ${code}`);
}

/**
 * A free TCP port below 32768: Temporal stores membership ports in a PostgreSQL smallint, so the
 * kernel's ephemeral range (32768 and up, what port 0 gives) fails at start-up.
 */
export async function freeLowPort(host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    const ok = await new Promise<boolean>((resolve) => {
      const probe = net.createServer();
      probe.once('error', () => resolve(false));
      probe.listen(port, host, () => probe.close(() => resolve(true)));
    });
    if (ok) return port;
  }
  throw new Error('no free TCP port between 20000 and 32000');
}

async function answers(address: string, namespace?: string): Promise<boolean> {
  const connection = await Connection.connect({ address, connectTimeout: 1000 });
  try {
    if (!namespace) {
      await connection.workflowService.getSystemInfo({});
      return true;
    }
    // Ready for Berth once the namespace and every search attribute the workflows set are known.
    const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace });
    return Object.keys(berthSearchAttributes).every((name) => customAttributes && name in customAttributes);
  } finally {
    await connection.close();
  }
}

/**
 * Creates Temporal's databases and schemas (scripts/compose/temporal-setup.sh), starts
 * `temporal-server --config-file temporal.yaml start` on free ports, then registers the namespace and
 * Berth's search attributes (scripts/compose/temporal-namespace.sh). Resolves once the namespace serves.
 */
export async function startTemporalCluster(opts: StartTemporalClusterOptions): Promise<TemporalCluster> {
  const bindIp = opts.bindIp ?? '127.0.0.1';
  const dbEnv = {
    TEMPORAL_DB_HOST: '127.0.0.1',
    TEMPORAL_DB_PORT: String(opts.postgres.port),
    TEMPORAL_DB_USER: opts.postgres.user,
    TEMPORAL_DB_PASSWORD: opts.postgres.password ?? '',
  };
  await runScript('temporal-setup.sh', dbEnv, opts.sink);

  const ports: Record<string, string> = {};
  for (const name of ['FRONTEND', 'FRONTEND_HTTP', 'FRONTEND_MEMBERSHIP', 'HISTORY', 'HISTORY_MEMBERSHIP', 'MATCHING',
    'MATCHING_MEMBERSHIP', 'WORKER', 'WORKER_MEMBERSHIP']) {
    ports[`TEMPORAL_${name}_PORT`] = String(await freeLowPort(bindIp));
  }
  const address = `${bindIp}:${ports.TEMPORAL_FRONTEND_PORT}`;
  const server = await startProcess({
    name: 'temporal',
    command: path.join(cacheDir, 'bin', 'temporal-server'),
    args: ['--config-file', path.join(rootDir, 'temporal.yaml'), '--allow-no-auth', 'start'],
    cwd: rootDir,
    env: {
      ...process.env, ...dbEnv, ...ports,
      TEMPORAL_BIND_IP: bindIp,
      TEMPORAL_BROADCAST_ADDRESS: bindIp,
      TEMPORAL_DYNAMIC_CONFIG_FILE: path.join(rootDir, 'scripts', 'compose', 'dynamicconfig.yaml'),
    },
    sink: opts.sink,
    readyTimeoutMs: 120_000,
    stopTimeoutMs: 20_000,
    ready: () => answers(address),
  });
  try {
    await runScript('temporal-namespace.sh', { TEMPORAL_ADDRESS: address, TEMPORAL_NAMESPACE: opts.namespace }, opts.sink);
    const deadline = Date.now() + 60_000;
    while (!(await answers(address, opts.namespace).catch(() => false))) {
      if (Date.now() > deadline) throw new Error(`namespace ${opts.namespace} did not become ready on ${address}`);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  } catch (err) {
    await server.stop();
    throw err;
  }
  return { address, namespace: opts.namespace, process: server, stop: () => server.stop() };
}

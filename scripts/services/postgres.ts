import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startProcess, type LineSink, type ManagedProcess } from '../../lib/process.ts';

/** Debian's PostgreSQL 15 server binaries (package postgresql-15). */
export const postgresBinDir = '/usr/lib/postgresql/15/bin';

/** The superuser and database every Berth PostgreSQL has. */
export const postgresUser = 'berth';
export const postgresDatabase = 'berth';

/**
 * Settings that trade crash safety for speed: for throwaway test clusters only. A power cut can
 * corrupt such a cluster; a test run does not care.
 */
export const testSettings: Readonly<Record<string, string>> = {
  fsync: 'off',
  synchronous_commit: 'off',
  full_page_writes: 'off',
};

export interface StartPostgresOptions {
  /** Cluster directory; created and initialised on first use, reused afterwards. */
  dataDir: string;
  port: number;
  /** Where the server's log lines go (default: prefixed lines on stdout). */
  sink?: LineSink;
  /** Extra `-c name=value` server settings, e.g. `testSettings`. */
  settings?: Readonly<Record<string, string>>;
  /** Name in the combined log (default 'postgres'). */
  name?: string;
  readyTimeoutMs?: number;
}

export interface RunningPostgres {
  /** Connection URL of the 'berth' database. */
  url: string;
  /** Fast shutdown (SIGINT): rolls back open transactions and exits cleanly. */
  stop(): Promise<void>;
  /** The managed server process, or null when DATABASE_URL pointed elsewhere and nothing started. */
  process: ManagedProcess | null;
}

/**
 * The DATABASE_URL to use instead of starting PostgreSQL, when the environment gives one.
 * An empty value counts as not given.
 */
export function externalDatabaseUrl(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const url = env.DATABASE_URL?.trim();
  return url ? url : undefined;
}

/**
 * Honours an externally given DATABASE_URL by starting nothing; otherwise starts the private
 * PostgreSQL of `startPostgres`.
 */
export async function postgresFromEnvOrStart(
  opts: StartPostgresOptions & { env?: NodeJS.ProcessEnv },
): Promise<RunningPostgres> {
  const url = externalDatabaseUrl(opts.env);
  if (url) return { url, stop: async () => {}, process: null };
  return startPostgres(opts);
}

/**
 * Starts a private PostgreSQL 15 on `dataDir` and `port`, listening on 127.0.0.1 only, with its
 * Unix socket inside the data directory. Runs initdb the first time (UTF8, trust auth on loopback,
 * superuser 'berth'), waits until a real connection succeeds, and creates database 'berth' if missing.
 * As root, the server runs as the OS user 'postgres' because PostgreSQL refuses to run as root.
 */
export async function startPostgres(opts: StartPostgresOptions): Promise<RunningPostgres> {
  const dataDir = path.resolve(opts.dataDir);
  const name = opts.name ?? 'postgres';
  const runAs = process.getuid?.() === 0 ? await lookupOsUser('postgres') : undefined;

  await prepareDataDir(dataDir, runAs);
  if (!existsSync(path.join(dataDir, 'PG_VERSION'))) {
    // A cluster that will run without fsync need not be synced to disk when created either.
    await initdb(dataDir, name, opts.sink, runAs, opts.settings?.fsync === 'off');
  }

  const settings: Record<string, string> = { listen_addresses: '127.0.0.1', ...opts.settings };
  const args = ['-D', dataDir, '-p', String(opts.port), '-k', dataDir];
  for (const [key, value] of Object.entries(settings)) args.push('-c', `${key}=${value}`);

  const adminUrl = postgresUrl(opts.port, 'postgres');
  const server = await startProcess({
    name,
    command: path.join(postgresBinDir, 'postgres'),
    args,
    env: serverEnv(),
    uid: runAs?.uid,
    gid: runAs?.gid,
    sink: opts.sink,
    stopSignal: 'SIGINT',
    stopTimeoutMs: 15_000,
    readyTimeoutMs: opts.readyTimeoutMs ?? 60_000,
    ready: () => canQuery(adminUrl),
  });
  try {
    await createDatabaseIfMissing(adminUrl, postgresDatabase);
  } catch (err) {
    await server.stop();
    throw err;
  }
  return { url: postgresUrl(opts.port, postgresDatabase), stop: () => server.stop(), process: server };
}

/** `postgres://berth@127.0.0.1:<port>/<database>`: trust auth on loopback needs no password. */
export function postgresUrl(port: number, database = postgresDatabase): string {
  return `postgres://${postgresUser}@127.0.0.1:${port}/${database}`;
}

export interface OsUser {
  name: string;
  uid: number;
  gid: number;
}

/** Looks an OS user up in /etc/passwd (no shelling out to `id`). */
export async function lookupOsUser(name: string): Promise<OsUser> {
  const passwd = await readFile('/etc/passwd', 'utf8');
  for (const line of passwd.split('\n')) {
    const [user, , uid, gid] = line.split(':');
    if (user === name && uid !== undefined && gid !== undefined) {
      return { name, uid: Number(uid), gid: Number(gid) };
    }
  }
  throw new Error(
    `PostgreSQL cannot run as root and there is no '${name}' OS user to run it as ` +
      `(install Debian's postgresql-15 package, which creates it, or run as a non-root user)`,
  );
}

async function prepareDataDir(dataDir: string, runAs: OsUser | undefined): Promise<void> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  if (!runAs) return;
  // Every ancestor must let 'postgres' through, or initdb fails with a bare "permission denied".
  for (let dir = path.dirname(dataDir); ; dir = path.dirname(dir)) {
    const info = await stat(dir);
    const passable = info.uid === runAs.uid || (info.mode & 0o001) !== 0 || (info.gid === runAs.gid && (info.mode & 0o010) !== 0);
    if (!passable) {
      // A private temporary folder (mkdtemp makes them 0700) may be opened for traversal, not listing.
      if (!isInside(dir, tmpdir())) {
        throw new Error(`PostgreSQL runs as OS user '${runAs.name}', which cannot enter ${dir}: make it world-executable (chmod o+x) or choose another data directory`);
      }
      await chmod(dir, info.mode | 0o001);
    }
    if (dir === path.dirname(dir)) break;
  }
  const info = await stat(dataDir);
  if (info.uid !== runAs.uid) await chownTree(dataDir, runAs.uid, runAs.gid);
}

function isInside(dir: string, parent: string): boolean {
  const relative = path.relative(path.resolve(parent), dir);
  return relative !== '' && !relative.startsWith('..') && !path.isAbsolute(relative);
}

async function chownTree(dir: string, uid: number, gid: number): Promise<void> {
  await chown(dir, uid, gid);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) await chownTree(full, uid, gid);
    else await chown(full, uid, gid);
  }
}

async function initdb(dataDir: string, name: string, sink: LineSink | undefined, runAs: OsUser | undefined, noSync: boolean): Promise<void> {
  const run = await startProcess({
    name: `${name}-init`,
    command: path.join(postgresBinDir, 'initdb'),
    args: ['-D', dataDir, '-U', postgresUser, '-E', 'UTF8', '--locale=C.UTF-8', '--auth=trust', '--no-instructions', ...(noSync ? ['--no-sync'] : [])],
    env: serverEnv(),
    uid: runAs?.uid,
    gid: runAs?.gid,
    sink,
  });
  const code = await run.exited;
  if (code !== 0) throw new Error(`initdb failed (exit ${code}) for ${dataDir}; its output is above`);
  // Trust only loopback: the Unix socket in the data dir and 127.0.0.1/::1. Nothing else may connect.
  const hba = [
    '# Written by scripts/services/postgres.ts: a private development cluster.',
    'local all all trust',
    'host all all 127.0.0.1/32 trust',
    'host all all ::1/128 trust',
    '',
  ].join('\n');
  const hbaPath = path.join(dataDir, 'pg_hba.conf');
  await writeFile(hbaPath, hba);
  if (runAs) await chown(hbaPath, runAs.uid, runAs.gid);
}

/** The environment for initdb and postgres: ours, minus libpq variables that would confuse them. */
function serverEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, LC_ALL: 'C.UTF-8' };
  for (const key of Object.keys(env)) if (key.startsWith('PG')) delete env[key];
  return env;
}

async function canQuery(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } finally {
    await client.end().catch(() => {});
  }
}

async function createDatabaseIfMissing(adminUrl: string, database: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const found = await client.query('select 1 from pg_database where datname = $1', [database]);
    if (found.rowCount === 0) await client.query(`create database ${pg.escapeIdentifier(database)}`);
  } finally {
    await client.end();
  }
}

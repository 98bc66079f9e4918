import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { expect, test } from 'vitest';

// docker-compose (Python) takes seconds to start, more on a busy machine.
const composeTimeout = 60_000;
import { rootDir } from '../../lib/paths.ts';
import { parseApiConfig } from '../../api/config.ts';
import { parseWorkerConfig } from '../../worker/config.ts';

const run = promisify(execFile);

/** What docker-compose.yml takes from the environment in production (made up, per run). */
function productionEnv(secretsDir: string): Record<string, string> {
  return { MAIL_FROM: 'Berth <hello@berth.example>', APP_URL: 'https://berth.example', BERTH_DOMAIN: 'berth.example', BERTH_SECRETS_DIR: secretsDir };
}

/** The secret files an operator writes into ./secrets/ (made up, per run). */
function writeSecrets(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'berth-secrets-'));
  const password = randomBytes(12).toString('hex');
  const secrets: Record<string, string> = {
    postgres_password: password,
    berth_owner_password: 'owner-password',
    berth_app_password: 'app-password',
    temporal_db_password: 'temporal-password',
    owner_database_url: 'postgres://berth_owner:owner-password@postgres:5432/berth',
    database_url: 'postgres://berth_app:app-password@postgres:5432/berth',
    master_keys_previous: '',
    session_secret: randomBytes(32).toString('hex'),
    master_key: randomBytes(32).toString('base64'),
    stripe_secret_key: `sk_live_${randomBytes(12).toString('hex')}`,
    stripe_webhook_secret: `whsec_${randomBytes(12).toString('hex')}`,
    resend_api_key: `re_${randomBytes(12).toString('hex')}`,
    s3_access_key_id: `AK${randomBytes(8).toString('hex')}`,
    s3_secret_access_key: randomBytes(20).toString('hex'),
    hcloud_token: randomBytes(32).toString('hex'),
  };
  for (const [name, value] of Object.entries(secrets)) writeFileSync(path.join(dir, name), `${value}\n`, { mode: 0o600 });
  return dir;
}

interface Service {
  environment?: Record<string, string | null>;
  healthcheck?: { test?: unknown; disable?: boolean };
  restart?: string;
  depends_on?: Record<string, { condition: string }>;
  ports?: ({ published: string | number; target: number; host_ip?: string } | string)[];
  secrets?: ({ source: string } | string)[];
  networks?: Record<string, unknown> | string[];
}
interface Compose { services: Record<string, Service>; secrets: Record<string, { file: string }>; networks: Record<string, { internal?: boolean }> }

async function composeConfig(env: Record<string, string>): Promise<Compose> {
  const { stdout } = await run('docker-compose', ['-f', 'docker-compose.yml', 'config'], {
    cwd: rootDir, env: { PATH: process.env.PATH, ...env },
  });
  return parse(stdout) as Compose;
}

/** Services that run once and exit; the rest run for good. */
const oneShots = ['migrate', 'temporal-namespace', 'temporal-schema'];

test('docker-compose.yml parses; long-running services have a health check and restart, one-shot jobs restart on failure and are awaited', async () => {
  const config = await composeConfig(productionEnv(writeSecrets()));
  expect(Object.keys(config.services).sort()).toEqual(
    ['migrate', 'minio', 'postgres', 'proxy', 'temporal', 'temporal-namespace', 'temporal-schema', 'temporal-ui', 'web', 'worker'].sort());
  for (const [name, service] of Object.entries(config.services)) {
    if (oneShots.includes(name)) {
      expect(service.restart, name).toBe('on-failure');
      // Whoever needs a one-shot job waits for it to complete successfully.
      const waiters = Object.values(config.services).filter((s) => s.depends_on?.[name]);
      expect(waiters.length, name).toBeGreaterThan(0);
      for (const w of waiters) expect(w.depends_on![name]!.condition).toBe('service_completed_successfully');
    } else {
      expect(service.restart, name).toBe('unless-stopped');
      expect(service.healthcheck?.test, name).toBeTruthy();
      expect(service.healthcheck?.disable, name).not.toBe(true);
    }
  }
}, composeTimeout);

test('only the TLS proxy listens publicly; the database, Temporal and object storage have no route out', async () => {
  const config = await composeConfig(productionEnv(writeSecrets()));
  // Long syntax, or compose v1's "[host_ip:]published:target[/protocol]".
  const published = Object.entries(config.services).flatMap(([name, s]) => (s.ports ?? []).map((p) => {
    if (typeof p !== 'string') return { name, hostIp: p.host_ip ?? '', port: Number(p.published) };
    const parts = p.replace(/\/\w+$/, '').split(':');
    return { name, hostIp: parts.length === 3 ? parts[0]! : '', port: Number(parts.at(-2)) };
  }));
  expect(published.filter((p) => p.hostIp !== '127.0.0.1').map((p) => [p.name, p.port])).toEqual([['proxy', 443]]);
  expect(published.filter((p) => p.hostIp === '127.0.0.1').map((p) => [p.name, p.port])).toEqual([['temporal-ui', 8233]]);
  expect(config.networks.backend?.internal).toBe(true);
  const networksOf = (s: Service) => (Array.isArray(s.networks) ? s.networks : Object.keys(s.networks ?? {}));
  for (const name of ['postgres', 'temporal', 'minio', 'temporal-schema', 'temporal-namespace', 'temporal-ui']) {
    expect(networksOf(config.services[name]!), name).toEqual(['backend']);
  }
}, composeTimeout);

test('each service gets only its own secrets, as files, and web and worker start with them in production', async () => {
  const secretsDir = writeSecrets();
  const config = await composeConfig(productionEnv(secretsDir));
  const secretsOf = (name: string) => (config.services[name]?.secrets ?? []).map((s) => (typeof s === 'string' ? s : s.source)).sort();
  expect(secretsOf('web')).toEqual(['database_url', 'master_key', 'master_keys_previous', 'resend_api_key', 'session_secret', 'stripe_secret_key', 'stripe_webhook_secret']);
  expect(secretsOf('worker')).toEqual(['database_url', 'hcloud_token', 'master_key', 'master_keys_previous', 'resend_api_key', 's3_access_key_id', 's3_secret_access_key', 'stripe_secret_key']);
  expect(secretsOf('migrate')).toEqual(['owner_database_url']);
  expect(secretsOf('proxy')).toEqual([]);
  expect(secretsOf('temporal-ui')).toEqual([]);
  // No secret value is written into any service's environment.
  const values = Object.keys(config.secrets).map((n) => path.join(secretsDir, n));
  for (const [name, s] of Object.entries(config.services)) {
    for (const value of Object.values(s.environment ?? {})) {
      for (const file of values) expect(String(value), name).not.toContain(file);
      expect(String(value), name).not.toMatch(/sk_live_|whsec_|re_[0-9a-f]{8}/);
    }
  }
  // The same schemas the processes parse at start, with /run/secrets/ as this run's secret files.
  const envOf = (service: string) => Object.fromEntries(Object.entries(config.services[service]?.environment ?? {})
    .map(([k, v]) => [k, v === null ? undefined : v.replace('/run/secrets/', `${secretsDir}/`)]));
  expect(envOf('web').NODE_ENV).toBe('production');
  expect(parseApiConfig(envOf('web'))).toMatchObject({ NODE_ENV: 'production', billing: 'stripe', PORT: 3000 });
  expect(parseWorkerConfig(envOf('worker'))).toMatchObject({ NODE_ENV: 'production', billing: 'stripe', mailer: 'resend' });
  // Without its secret files, the web process refuses to start and names what is missing.
  const missing = { ...envOf('web'), SESSION_SECRET_FILE: path.join(secretsDir, 'no-such-secret') };
  expect(() => parseApiConfig(missing)).toThrow(/SESSION_SECRET_FILE\s+cannot read the file it names \(ENOENT\)/);
}, composeTimeout);

test('without its settings, docker-compose refuses to start and names what is missing', async () => {
  const env = productionEnv(writeSecrets());
  delete (env as Record<string, string | undefined>).BERTH_DOMAIN;
  await expect(composeConfig(env)).rejects.toThrow(/BERTH_DOMAIN/);
}, composeTimeout);

test('the app, the migrations and Temporal each connect with their own least-privilege role', async () => {
  const config = await composeConfig(productionEnv(writeSecrets()));
  const secretsOf = (name: string) => (config.services[name]?.secrets ?? []).map((s) => (typeof s === 'string' ? s : s.source)).sort();
  // Only the database's own service sees the superuser's and the roles' passwords.
  expect(secretsOf('postgres')).toEqual(['berth_app_password', 'berth_owner_password', 'postgres_password', 'temporal_db_password']);
  expect(config.services.postgres?.environment?.POSTGRES_USER).toBe('postgres');
  for (const name of ['temporal', 'temporal-schema']) {
    expect(secretsOf(name), name).toEqual(['temporal_db_password']);
    expect(config.services[name]?.environment?.TEMPORAL_DB_USER, name).toBe('temporal');
  }
  expect(config.services.migrate?.environment?.DATABASE_URL_FILE).toBe('/run/secrets/owner_database_url');
  for (const name of ['web', 'worker']) {
    expect(config.services[name]?.environment?.DATABASE_URL_FILE, name).toBe('/run/secrets/database_url');
    expect(config.services[name]?.environment?.BERTH_MODE, name).toBe('production');
  }
}, composeTimeout);

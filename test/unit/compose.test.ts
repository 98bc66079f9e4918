import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { expect, test } from 'vitest';
import { rootDir } from '../../scripts/services/paths.ts';
import { parseApiConfig } from '../../api/config.ts';
import { parseWorkerConfig } from '../../worker/config.ts';

const run = promisify(execFile);

/** Production-like values for what docker-compose.yml takes from the environment (made up, per run). */
function productionEnv(): Record<string, string> {
  return {
    POSTGRES_PASSWORD: randomBytes(12).toString('hex'),
    BERTH_OWNER_PASSWORD: randomBytes(12).toString('hex'),
    BERTH_APP_PASSWORD: randomBytes(12).toString('hex'),
    TEMPORAL_DB_PASSWORD: randomBytes(12).toString('hex'),
    AWS_ACCESS_KEY_ID: `AK${randomBytes(8).toString('hex')}`,
    AWS_SECRET_ACCESS_KEY: randomBytes(20).toString('hex'),
    HCLOUD_TOKEN: randomBytes(32).toString('hex'),
    STRIPE_SECRET_KEY: `sk_live_${randomBytes(12).toString('hex')}`,
    STRIPE_WEBHOOK_SECRET: `whsec_${randomBytes(12).toString('hex')}`,
    RESEND_API_KEY: `re_${randomBytes(12).toString('hex')}`,
    MAIL_FROM: 'Berth <hello@berth.example>',
    APP_URL: 'https://berth.example',
    SESSION_SECRET: randomBytes(32).toString('hex'),
    MASTER_KEY: randomBytes(32).toString('base64'),
  };
}

async function composeConfig(env: Record<string, string>) {
  const { stdout } = await run('docker-compose', ['-f', 'docker-compose.yml', 'config'], {
    cwd: rootDir, env: { PATH: process.env.PATH, ...env },
  });
  return parse(stdout) as { services: Record<string, { environment?: Record<string, string | null>; healthcheck?: unknown; depends_on?: unknown;
    ports?: (string | { host_ip?: string; published?: string; target?: number })[] }> };
}

test('docker-compose.yml parses, and every long-running service has a health check or waits on one', async () => {
  const config = await composeConfig(productionEnv());
  expect(Object.keys(config.services).sort()).toEqual(
    ['migrate', 'minio', 'postgres', 'temporal', 'temporal-namespace', 'temporal-schema', 'temporal-ui', 'web', 'worker'].sort());
  for (const name of ['postgres', 'temporal', 'minio', 'web']) expect(config.services[name]?.healthcheck, name).toBeTruthy();
  for (const name of ['worker', 'web', 'temporal-ui', 'migrate']) expect(config.services[name]?.depends_on, name).toBeTruthy();
});

test('the web and worker services get every variable their configuration needs in production', async () => {
  const config = await composeConfig(productionEnv());
  const envOf = (service: string) => Object.fromEntries(
    Object.entries(config.services[service]?.environment ?? {}).map(([k, v]) => [k, v ?? undefined]));
  expect(envOf('web').NODE_ENV).toBe('production');
  // The same schemas the processes parse at start: any missing or development value would throw here.
  expect(parseApiConfig(envOf('web'))).toMatchObject({ NODE_ENV: 'production', billing: 'stripe', PORT: 3000 });
  expect(parseWorkerConfig(envOf('worker'))).toMatchObject({ NODE_ENV: 'production', billing: 'stripe', mailer: 'resend' });
});

test('without its secrets, docker-compose refuses to start and names what is missing', async () => {
  const env = productionEnv();
  delete (env as Record<string, string | undefined>).POSTGRES_PASSWORD;
  await expect(composeConfig(env)).rejects.toThrow(/POSTGRES_PASSWORD/);
});

test('each service gets only the secrets it uses, and the app connects with its own least-privilege role', async () => {
  const env = productionEnv();
  const config = await composeConfig(env);
  const secretsOf = (service: string) => Object.entries(env)
    .filter(([name]) => name !== 'APP_URL' && name !== 'MAIL_FROM')
    .filter(([, value]) => Object.values(config.services[service]?.environment ?? {}).some((v) => typeof v === 'string' && v.includes(value)))
    .map(([name]) => name).sort();
  expect(secretsOf('web')).toEqual(['BERTH_APP_PASSWORD', 'MASTER_KEY', 'RESEND_API_KEY', 'SESSION_SECRET', 'STRIPE_SECRET_KEY', 'STRIPE_WEBHOOK_SECRET']);
  expect(secretsOf('worker')).toEqual(['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'BERTH_APP_PASSWORD', 'HCLOUD_TOKEN', 'MASTER_KEY', 'RESEND_API_KEY', 'STRIPE_SECRET_KEY']);
  expect(secretsOf('migrate')).toEqual(['BERTH_OWNER_PASSWORD']);
  expect(secretsOf('temporal')).toEqual(['TEMPORAL_DB_PASSWORD']);
  expect(config.services.web?.environment?.DATABASE_URL).toMatch(/^postgres:\/\/berth_app:/);
  expect(config.services.migrate?.environment?.DATABASE_URL).toMatch(/^postgres:\/\/berth_owner:/);
  expect(config.services.temporal?.environment?.TEMPORAL_DB_USER).toBe('temporal');
  expect(config.services.web?.environment?.BERTH_MODE).toBe('production');
});

/** A published port as host address and container port, from either form docker-compose prints. */
function published(port: string | { host_ip?: string; target?: number }): { hostIp: string | undefined; target: number | undefined } {
  if (typeof port !== 'string') return { hostIp: port.host_ip, target: port.target };
  const parts = port.replace(/\/\w+$/, '').split(':');
  return { hostIp: parts.length === 3 ? parts[0] : undefined, target: Number(parts.at(-1)) };
}

test('the web server is published on loopback only, for a TLS proxy on the host', async () => {
  const config = await composeConfig(productionEnv());
  expect((config.services.web?.ports ?? []).map(published)).toEqual([{ hostIp: '127.0.0.1', target: 3000 }]);
  for (const [name, service] of Object.entries(config.services)) {
    for (const port of service.ports ?? []) expect(published(port).hostIp, name).toBe('127.0.0.1');
  }
});

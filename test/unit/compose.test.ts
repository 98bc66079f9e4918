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
  return parse(stdout) as { services: Record<string, { environment?: Record<string, string | null>; healthcheck?: unknown; depends_on?: unknown }> };
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

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { apiConfigSchema, parseApiConfig, publicConfig } from '../../api/config.ts';
import { ConfigError, localDefaults } from '../../lib/config.ts';
import { parseWorkerConfig, workerConfigSchema } from '../../worker/config.ts';

/** The ConfigError thrown for `env`, or a failure if the config was accepted. */
function configError(parse: () => unknown): ConfigError {
  try {
    parse();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected the configuration to be refused');
}

const productionSecrets = {
  NODE_ENV: 'production',
  STRIPE_SECRET_KEY: 'sk_live_abc123',
  MASTER_KEY: Buffer.alloc(32, 7).toString('base64'),
  DATABASE_URL: 'postgres://berth_app@db.internal:5432/berth',
  APP_URL: 'https://berth.example',
  RESEND_API_KEY: 're_abc123',
};
const local = { BERTH_MODE: 'local' };

describe('local defaults', () => {
  test('local mode, said explicitly, is a working local configuration for both processes', () => {
    const worker = parseWorkerConfig(local);
    expect(worker).toMatchObject({
      NODE_ENV: 'development',
      DATABASE_URL: 'postgres://berth@127.0.0.1:54329/berth',
      TEMPORAL_ADDRESS: '127.0.0.1:7233',
      TEMPORAL_NAMESPACE: 'default',
      TEMPORAL_TASK_QUEUE: 'berth',
      AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:9000',
      S3_BUCKET: 'berth-backups',
      HCLOUD_ENDPOINT: 'http://127.0.0.1:4010/v1',
      SMTP_URL: 'smtp://127.0.0.1:1025',
      billing: 'local',
      mailer: 'smtp',
    });
    expect(worker.STRIPE_SECRET_KEY).toBeUndefined();
    expect(worker.RESEND_API_KEY).toBeUndefined();
    const api = parseApiConfig(local);
    expect(api).toMatchObject({ PORT: 3000, APP_URL: 'http://localhost:3000', billing: 'local', BERTH_MODE: 'local', TRUST_PROXY: 'loopback' });
    expect(api.SESSION_SECRET.length).toBeGreaterThanOrEqual(32);
  });

  test('empty values count as unset, and given values win over defaults', () => {
    const api = parseApiConfig({ ...local, PORT: '', APP_URL: 'https://berth.example', STRIPE_SECRET_KEY: 'sk_test_123' });
    expect(api).toMatchObject({ PORT: 3000, APP_URL: 'https://berth.example', billing: 'stripe' });
    expect(parseWorkerConfig({ ...local, RESEND_API_KEY: 're_abc' }).mailer).toBe('resend');
  });

  test('without BERTH_MODE a process is in production mode: an empty environment is refused, naming what to set', () => {
    const api = configError(() => parseApiConfig({}));
    expect(api.problems.map((p) => p.variable).sort()).toEqual(
      ['APP_URL', 'DATABASE_URL', 'MASTER_KEY', 'RESEND_API_KEY', 'SESSION_SECRET', 'STRIPE_SECRET_KEY', 'STRIPE_WEBHOOK_SECRET'].sort());
    const worker = configError(() => parseWorkerConfig({ NODE_ENV: 'development' }));
    expect(worker.problems.map((p) => p.variable)).toEqual(expect.arrayContaining(['HCLOUD_ENDPOINT', 'HCLOUD_TOKEN', 'AWS_ENDPOINT_URL_S3', 'MASTER_KEY']));
    // Local mode is for development and tests only.
    expect(configError(() => parseApiConfig({ ...local, NODE_ENV: 'production' })).problems)
      .toEqual([{ variable: 'BERTH_MODE', message: 'local mode cannot run with NODE_ENV=production' }]);
  });

  test('older master keys are id:base64 pairs, each 32 bytes; a bad list is refused without echoing it', () => {
    const key = (n: number) => Buffer.alloc(32, n).toString('base64');
    expect(parseApiConfig({ ...local, MASTER_KEYS_PREVIOUS: `k0:${key(1)}, k1:${key(2)}` }).MASTER_KEYS_PREVIOUS)
      .toEqual([{ id: 'k0', base64: key(1) }, { id: 'k1', base64: key(2) }]);
    for (const bad of [`k0:${Buffer.alloc(16).toString('base64')}`, `k0:${key(1)},k0:${key(2)}`, 'no-colon-here']) {
      const err = configError(() => parseApiConfig({ ...local, MASTER_KEYS_PREVIOUS: bad }));
      expect(err.problems.map((p) => p.variable)).toEqual(['MASTER_KEYS_PREVIOUS']);
      expect(err.message).not.toContain(bad);
    }
  });
});

describe('bad configuration', () => {
  test('yields ONE message naming EACH bad variable, without echoing values', () => {
    const err = configError(() =>
      parseApiConfig({
        ...local,
        PORT: 'eighty',
        DATABASE_URL: 'mysql://db/berth',
        TEMPORAL_ADDRESS: 'no-port-here',
        SESSION_SECRET: 'short-secret-value',
        LOG_LEVEL: 'loud',
        STRIPE_SECRET_KEY: 'pk_test_publishable',
      }),
    );
    expect(err.problems.map((p) => p.variable).sort()).toEqual(
      ['DATABASE_URL', 'LOG_LEVEL', 'PORT', 'SESSION_SECRET', 'STRIPE_SECRET_KEY', 'TEMPORAL_ADDRESS'].sort(),
    );
    const lines = err.message.split('\n');
    expect(lines[0]).toBe('api: invalid configuration (6 variables); set these in the environment, see .env.example:');
    expect(lines).toHaveLength(7);
    expect(err.message).toMatch(/^ {2}PORT +must be a TCP port/m);
    expect(err.message).toMatch(/^ {2}DATABASE_URL +must be a URL starting with postgres:\/\/ or postgresql:\/\//m);
    expect(err.message).toMatch(/^ {2}SESSION_SECRET +must be at least 32 characters/m);
    expect(err.message).not.toContain('short-secret-value');
    expect(err.message).not.toContain('pk_test_publishable');
  });

  test('production refuses every development secret and requires Stripe, in the same message', () => {
    const err = configError(() => parseWorkerConfig({ NODE_ENV: 'production', S3_BUCKET: 'Bad_Bucket', APP_URL: 'https://berth.example', RESEND_API_KEY: 're_abc' }));
    const devDefault = 'must be set in production (the development default is refused)';
    expect(Object.fromEntries(err.problems.map((p) => [p.variable, p.message]))).toEqual({
      AWS_ACCESS_KEY_ID: devDefault,
      AWS_SECRET_ACCESS_KEY: devDefault,
      AWS_ENDPOINT_URL_S3: devDefault,
      DATABASE_URL: devDefault,
      HCLOUD_ENDPOINT: devDefault,
      HCLOUD_TOKEN: devDefault,
      MASTER_KEY: devDefault,
      S3_BUCKET: expect.stringContaining('must be an S3 bucket name'),
      STRIPE_SECRET_KEY: 'is required in production',
    });
    // Spelling out the development value does not sneak it past.
    const api = configError(() => parseApiConfig({ ...productionSecrets, SESSION_SECRET: localDefaults.SESSION_SECRET }));
    expect(api.problems.map((p) => p.variable).sort()).toEqual(['SESSION_SECRET', 'STRIPE_WEBHOOK_SECRET']);
    // Plain http and the local mail catcher are development only.
    const http = configError(() => parseApiConfig({ ...productionSecrets, RESEND_API_KEY: '', APP_URL: 'http://berth.example', SESSION_SECRET: 'x'.repeat(48), STRIPE_WEBHOOK_SECRET: 'whsec_real' }));
    expect(Object.fromEntries(http.problems.map((p) => [p.variable, p.message]))).toEqual({
      APP_URL: 'must be an https:// URL in production',
      RESEND_API_KEY: 'is required in production (or an SMTP_URL other than the local mail catcher)',
    });
  });

  test('production accepts real values', () => {
    const api = parseApiConfig({ ...productionSecrets, SESSION_SECRET: 'x'.repeat(48), STRIPE_WEBHOOK_SECRET: 'whsec_real' });
    expect(api.NODE_ENV).toBe('production');
    expect(() => parseApiConfig({ ...productionSecrets, SESSION_SECRET: 'x'.repeat(31), STRIPE_WEBHOOK_SECRET: 'whsec_real' })).toThrow(
      /SESSION_SECRET +must be at least 32 characters/,
    );
  });

  test('a master key must be 32 bytes of base64', () => {
    expect(configError(() => parseWorkerConfig({ ...local, MASTER_KEY: Buffer.alloc(16).toString('base64') })).problems).toEqual([
      { variable: 'MASTER_KEY', message: expect.stringContaining('32 random bytes in base64') },
    ]);
  });

  test('a real process exits non-zero printing that one message to stderr', () => {
    const script = "import { loadWorkerConfig } from './worker/config.ts'; loadWorkerConfig(); console.log('started anyway');";
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      cwd: new URL('../..', import.meta.url),
      env: { PATH: process.env.PATH, BERTH_MODE: 'local', DATABASE_URL: 'not a url', TEMPORAL_ADDRESS: '127.0.0.1', HCLOUD_ENDPOINT: 'ftp://example' },
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(child.status).toBe(1);
    expect(child.stdout).toBe('');
    expect(child.stderr).toContain('worker: invalid configuration (3 variables)');
    for (const variable of ['DATABASE_URL', 'TEMPORAL_ADDRESS', 'HCLOUD_ENDPOINT']) expect(child.stderr).toMatch(new RegExp(`^ {2}${variable} `, 'm'));
  });

  test('migrations outside local mode run only against a database named in the environment', () => {
    const child = spawnSync(process.execPath, ['db/cli.ts', 'up'], {
      cwd: new URL('../..', import.meta.url), env: { PATH: process.env.PATH }, encoding: 'utf8', timeout: 30_000,
    });
    expect(child.status).toBe(1);
    expect(child.stderr).toContain('db: invalid configuration (1 variable)');
    expect(child.stderr).toMatch(/^ {2}DATABASE_URL +must be set in production/m);
  });

  test('`node api/config.ts` checks the environment and says OK when it is good', () => {
    const child = spawnSync(process.execPath, ['api/config.ts'], {
      cwd: new URL('../..', import.meta.url),
      env: { PATH: process.env.PATH, BERTH_MODE: 'local' },
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(child.stderr).toBe('');
    expect(child.stdout).toContain('api: configuration OK');
    expect(child.status).toBe(0);
  });
});

test('the browser sees only the allow-listed fields', () => {
  const config = parseApiConfig({ ...local, STRIPE_SECRET_KEY: 'sk_test_123' });
  expect(publicConfig(config)).toEqual({ appUrl: 'http://localhost:3000', environment: 'development', mode: 'local', billing: 'stripe' });
  expect(JSON.stringify(publicConfig(config))).not.toMatch(/sk_test|SECRET|MASTER/);
});

test('.env.example documents exactly the variables the processes read, each with a comment', () => {
  const example = readFileSync(new URL('../../.env.example', import.meta.url), 'utf8').split('\n');
  const documented = example.flatMap((line, i) => {
    const name = /^([A-Z][A-Z0-9_]*)=/.exec(line)?.[1];
    return name ? [{ name, commented: example.slice(0, i).reverse().find((l) => !/^[A-Z]/.test(l))?.startsWith('#') ?? false }] : [];
  });
  const read = new Set([...Object.keys(apiConfigSchema.in.shape), ...Object.keys(workerConfigSchema.in.shape)]);
  expect(documented.map((d) => d.name).sort()).toEqual([...read].sort());
  expect(documented.filter((d) => !d.commented)).toEqual([]);
});

describe('cloud projects and secret files', () => {
  const token = 'hcloud-token-that-must-never-be-echoed';

  test('HCLOUD_PROJECTS is read as a list of named projects, in order', () => {
    const config = parseWorkerConfig({ ...local, HCLOUD_PROJECTS: JSON.stringify([{ name: 'p1', token, serverLimit: 100 }, { name: 'p2', token: `${token}2` }]) });
    expect(config.HCLOUD_PROJECTS).toEqual([{ name: 'p1', token, serverLimit: 100 }, { name: 'p2', token: `${token}2` }]);
  });

  test.each([
    ['not JSON', `[{name:p1,token:${token}}]`, /must be JSON/],
    ['an empty list', '[]', /at least one project/],
    ['a project without a token', '[{"name":"p1"}]', /HCLOUD_PROJECTS/],
    ['a bad server limit', `[{"name":"p1","token":"${token}","serverLimit":0}]`, /positive whole number/],
    ['a name used twice', `[{"name":"p1","token":"${token}"},{"name":"p1","token":"${token}x"}]`, /unique/],
  ])('HCLOUD_PROJECTS with %s is refused by name, without echoing a token', (_what, value, message) => {
    let error: unknown;
    try {
      parseWorkerConfig({ ...local, HCLOUD_PROJECTS: value });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toMatch(message);
    expect((error as ConfigError).message).toContain('HCLOUD_PROJECTS');
    expect((error as ConfigError).message).not.toContain(token);
  });

  test('NAME_FILE is refused next to NAME, and an unknown _FILE variable is left alone', () => {
    expect(() => parseApiConfig({ ...local, SESSION_SECRET: 'x'.repeat(40), SESSION_SECRET_FILE: '/dev/null' })).toThrow(/SESSION_SECRET_FILE\s+set SESSION_SECRET or SESSION_SECRET_FILE, not both/);
    expect(parseApiConfig({ ...local, SOME_TOOL_CONFIG_FILE: '/no/such/file' }).PORT).toBe(localDefaults.PORT);
  });
});

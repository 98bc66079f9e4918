import { readFileSync } from 'node:fs';
import { z } from 'zod';

/**
 * Configuration helpers shared by every process (api, worker, db cli). Each process owns one zod
 * schema over the environment; parsing it lists every missing or bad variable in one message.
 * Local defaults make a bare checkout run with no .env file; production refuses the ones that are
 * secrets.
 */

export type Env = Readonly<Record<string, string | undefined>>;

/**
 * The local development values: what the run command starts and the defaults below use. The
 * service starters read the same values, so there is one place to change a port or a dev key.
 */
export const localDefaults = {
  DATABASE_URL: 'postgres://berth@127.0.0.1:54329/berth',
  TEMPORAL_ADDRESS: '127.0.0.1:7233',
  TEMPORAL_NAMESPACE: 'default',
  TEMPORAL_TASK_QUEUE: 'berth',
  AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:9000',
  AWS_REGION: 'us-east-1',
  AWS_ACCESS_KEY_ID: 'berth-local',
  AWS_SECRET_ACCESS_KEY: 'berth-local-minio-secret',
  S3_BUCKET: 'berth-backups',
  HCLOUD_ENDPOINT: 'http://127.0.0.1:4010/v1',
  HCLOUD_TOKEN: 'berth-local-hcloud-token',
  STRIPE_WEBHOOK_SECRET: 'whsec_berth_local_development_secret',
  SMTP_URL: 'smtp://127.0.0.1:1025',
  MAIL_FROM: 'Berth <hello@berth.localhost>',
  APP_URL: 'http://localhost:3000',
  PORT: 3000,
  SESSION_SECRET: 'berth-local-development-session-secret-not-for-production',
  // 32 bytes, base64: AES-256. Anyone can read this line, so production refuses it.
  MASTER_KEY: Buffer.from('berth-local-dev-master-key-32by!').toString('base64'),
  MASTER_KEY_ID: 'local-1',
  LOG_LEVEL: 'info',
} as const;

/** One bad variable and what is wrong with it, in words a person can act on. */
export interface ConfigProblem {
  variable: string;
  message: string;
}

/** The configuration of `processName` is unusable; `message` names every bad variable. */
export class ConfigError extends Error {
  readonly problems: readonly ConfigProblem[];
  constructor(processName: string, problems: readonly ConfigProblem[]) {
    super(formatConfigProblems(processName, problems));
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/**
 * Parses `env` with `schema`. Empty values count as unset (so `FOO=` in a file means "use the
 * default"). Throws ConfigError listing every problem at once, never just the first.
 */
export function parseConfig<S extends z.ZodType>(schema: S, env: Env, processName: string): z.output<S> {
  const present: Record<string, string> = Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined && e[1].trim() !== ''));
  const fileProblems = readSecretFiles(present);
  const result = schema.safeParse(present);
  if (result.success && fileProblems.length === 0) return result.data;
  throw new ConfigError(processName, [...fileProblems, ...(result.success ? [] : problemsFrom(result.error))]);
}

/** Secrets that may also come from a file: `NAME_FILE=/run/secrets/name` (docker-compose.yml's secrets). */
export const fileSecrets = [
  'DATABASE_URL', 'SESSION_SECRET', 'MASTER_KEY', 'MASTER_KEYS_PREVIOUS', 'STRIPE_SECRET_KEY', 'STRIPE_WEBHOOK_SECRET', 'RESEND_API_KEY',
  'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'HCLOUD_TOKEN', 'HCLOUD_PROJECTS',
] as const;

/**
 * `NAME_FILE=/run/secrets/x` sets NAME (one of fileSecrets) to that file's content, one trailing
 * newline dropped: how docker-compose hands each service only its own secrets, without putting them
 * in the environment. Fills `env` in place; returns what failed.
 */
function readSecretFiles(env: Record<string, string>): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  for (const variable of fileSecrets) {
    const key = `${variable}_FILE`;
    const file = env[key];
    if (file === undefined) continue;
    if (env[variable] !== undefined) {
      problems.push({ variable: key, message: `set ${variable} or ${key}, not both` });
      continue;
    }
    try {
      env[variable] = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      problems.push({ variable: key, message: `cannot read the file it names (${(err as NodeJS.ErrnoException).code ?? 'error'})` });
    }
  }
  return problems;
}

/**
 * For a process's entry point: parse, or print the one message to stderr and exit 1. Exit rather
 * than throw so that a misconfigured process says why in one place and stops at once.
 */
export function loadConfigOrExit<S extends z.ZodType>(schema: S, env: Env, processName: string): z.output<S> {
  try {
    return parseConfig(schema, env, processName);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${err.message}\n`);
    process.exit(1);
  }
}

export function formatConfigProblems(processName: string, problems: readonly ConfigProblem[]): string {
  const width = Math.max(...problems.map((p) => p.variable.length));
  const count = problems.length === 1 ? '1 variable' : `${problems.length} variables`;
  return [
    `${processName}: invalid configuration (${count}); set these in the environment, see .env.example:`,
    ...problems.map((p) => `  ${p.variable.padEnd(width)}  ${p.message}`),
  ].join('\n');
}

/** One problem per variable (several messages for one variable are joined), in a stable order. */
function problemsFrom(error: z.ZodError): ConfigProblem[] {
  const byVariable = new Map<string, string[]>();
  for (const issue of error.issues) {
    const variable = issue.path.length > 0 ? issue.path.map(String).join('.') : '(environment)';
    const messages = byVariable.get(variable) ?? [];
    if (!messages.includes(issue.message)) messages.push(issue.message);
    byVariable.set(variable, messages);
  }
  return [...byVariable].map(([variable, messages]) => ({ variable, message: messages.join('; ') }));
}

// ---- field builders: messages never echo the value (it may be a secret) ----

/**
 * Which Berth this is. `local`: the run command and the test tiers, with local stand-ins (local
 * checkout, mail preview, local cloud) and development secrets. `production`: everything else —
 * the default, so a process started without saying otherwise never serves a stand-in or a dev secret.
 */
export const berthMode = z.enum(['local', 'production'], { message: 'must be local or production' }).default('production');

export const nodeEnv = z
  .enum(['development', 'test', 'production'], { message: 'must be development, test or production' })
  .default('development');

export const logLevel = z
  .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
    message: 'must be one of fatal, error, warn, info, debug, trace, silent',
  })
  .default(localDefaults.LOG_LEVEL);

/** A URL whose scheme is one of `protocols` (without the colon). */
export function url(protocols: readonly string[], fallback?: string) {
  const schema = z.string().refine((value) => {
    try {
      return protocols.includes(new URL(value).protocol.replace(/:$/, ''));
    } catch {
      return false;
    }
  }, `must be a URL starting with ${protocols.map((p) => `${p}://`).join(' or ')}`);
  return fallback === undefined ? schema : schema.default(fallback);
}

/** `host:port`, as Temporal addresses are written. */
export function hostPort(fallback: string) {
  return z
    .string()
    .regex(/^[A-Za-z0-9.\-[\]:]+:\d{1,5}$/, 'must be host:port, e.g. 127.0.0.1:7233')
    .default(fallback);
}

export function port(fallback: number) {
  const message = 'must be a TCP port (1-65535)';
  return z
    .string()
    .regex(/^\d{1,5}$/, message)
    .transform(Number)
    .refine((n) => n >= 1 && n <= 65535, message)
    .default(fallback);
}

/** A non-empty string with a local default. */
export function text(fallback: string) {
  return z.string().default(fallback);
}

/** A secret of at least `minLength` characters, with a development default production refuses. */
export function secret(fallback: string, minLength = 1) {
  return z.string().min(minLength, `must be at least ${minLength} characters`).default(fallback);
}

/** A base64 AES-256 key: exactly 32 bytes once decoded. */
export function aes256Key(fallback: string) {
  return z
    .string()
    .refine((value) => /^[A-Za-z0-9+/]+={0,2}$/.test(value) && Buffer.from(value, 'base64').length === 32, {
      message: 'must be 32 random bytes in base64 (e.g. `openssl rand -base64 32`)',
    })
    .default(fallback);
}

/**
 * A refinement for a process schema: outside local mode (BERTH_MODE=production, the default), each
 * listed variable must not hold its development default (set or defaulted, both refused), each
 * `required` one must be set, APP_URL must be https, and mail must go somewhere real (Resend, or an
 * SMTP_URL that is not the local mail catcher). Local mode with NODE_ENV=production is refused.
 * It runs even when other variables are bad, so the one message lists everything.
 */
export function productionRules(opts: { devDefaults: Readonly<Record<string, string>>; required?: readonly string[] }) {
  return [
    (config: Record<string, unknown>, ctx: z.RefinementCtx) => {
      if (config.BERTH_MODE === 'local') {
        if (config.NODE_ENV === 'production') ctx.addIssue({ code: 'custom', path: ['BERTH_MODE'], message: 'local mode cannot run with NODE_ENV=production' });
        return;
      }
      for (const [variable, devValue] of Object.entries(opts.devDefaults)) {
        if (config[variable] === devValue) {
          ctx.addIssue({ code: 'custom', path: [variable], message: 'must be set in production (the development default is refused)' });
        }
      }
      for (const variable of opts.required ?? []) {
        if (config[variable] === undefined) {
          ctx.addIssue({ code: 'custom', path: [variable], message: 'is required in production' });
        }
      }
      if (typeof config.APP_URL === 'string' && !config.APP_URL.startsWith('https://')) {
        ctx.addIssue({ code: 'custom', path: ['APP_URL'], message: 'must be an https:// URL in production' });
      }
      if ('SMTP_URL' in config && config.RESEND_API_KEY === undefined && config.SMTP_URL === localDefaults.SMTP_URL) {
        ctx.addIssue({ code: 'custom', path: ['RESEND_API_KEY'], message: 'is required in production (or an SMTP_URL other than the local mail catcher)' });
      }
    },
    { when: () => true },
  ] as const;
}

const keyId = z.string().regex(/^[\w.-]{1,64}$/, 'must be a short key id (letters, digits, . _ -)');

/** `id:base64,id:base64` → [{ id, base64 }]; each key 32 bytes, ids unique. */
const previousKeys = z
  .string()
  .transform((value, ctx) => {
    const keys = value.split(',').map((pair) => pair.trim()).filter(Boolean).map((pair) => {
      const at = pair.indexOf(':');
      return { id: pair.slice(0, at), base64: pair.slice(at + 1) };
    });
    const ids = new Set<string>();
    for (const key of keys) {
      const valid = keyId.safeParse(key.id).success && /^[A-Za-z0-9+/]+={0,2}$/.test(key.base64) && Buffer.from(key.base64, 'base64').length === 32;
      if (!valid || ids.has(key.id)) {
        ctx.addIssue({ code: 'custom', message: 'must be id:base64 pairs separated by commas, each key 32 random bytes, each id once' });
        return z.NEVER;
      }
      ids.add(key.id);
    }
    return keys;
  })
  .default([]);

/** Variables more than one process reads, defined once so they mean the same everywhere. */
export const commonFields = {
  BERTH_MODE: berthMode,
  NODE_ENV: nodeEnv,
  LOG_LEVEL: logLevel,
  APP_URL: url(['http', 'https'], localDefaults.APP_URL),
  DATABASE_URL: url(['postgres', 'postgresql'], localDefaults.DATABASE_URL),
  TEMPORAL_ADDRESS: hostPort(localDefaults.TEMPORAL_ADDRESS),
  TEMPORAL_NAMESPACE: text(localDefaults.TEMPORAL_NAMESPACE),
  TEMPORAL_TASK_QUEUE: text(localDefaults.TEMPORAL_TASK_QUEUE),
  /** Absent: billing runs locally (local checkout page, signed webhooks) instead of Stripe. */
  STRIPE_SECRET_KEY: z.string().regex(/^(sk|rk)_(test|live)_\w+$/, 'must be a Stripe secret key (sk_test_..., sk_live_...)').optional(),
  MASTER_KEY: aes256Key(localDefaults.MASTER_KEY),
  MASTER_KEY_ID: keyId.default(localDefaults.MASTER_KEY_ID),
  /**
   * Older master keys that still decrypt, while the re-encryption job moves what they sealed to the
   * current key: `id:base64` pairs separated by commas. A key leaves this list only once nothing uses it.
   */
  MASTER_KEYS_PREVIOUS: previousKeys,
};

/** Where mail goes: Resend when RESEND_API_KEY is set, else SMTP (maildev locally). api and worker both send. */
export const mailFields = {
  /** Absent: mail goes over SMTP to SMTP_URL (maildev locally). */
  RESEND_API_KEY: z.string().regex(/^re_\w+$/, 'must be a Resend API key (re_...)').optional(),
  RESEND_BASE_URL: url(['http', 'https']).optional(),
  SMTP_URL: url(['smtp', 'smtps'], localDefaults.SMTP_URL),
  MAIL_FROM: text(localDefaults.MAIL_FROM),
};

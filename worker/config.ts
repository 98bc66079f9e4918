import { z } from 'zod';
import { planPriceEnvSchema } from '../activities/billing/plans.ts';
import { commonFields, mailFields, loadConfigOrExit, localDefaults, parseConfig, productionRules, secret, text, url, type Env } from '../lib/config.ts';

/** The worker's environment: Temporal, PostgreSQL, object storage, Hetzner, Stripe, mail, secrets. */
export const workerConfigSchema = z
  .object({
    ...commonFields,
    ...planPriceEnvSchema.shape,
    AWS_ENDPOINT_URL_S3: url(['http', 'https'], localDefaults.AWS_ENDPOINT_URL_S3),
    AWS_REGION: text(localDefaults.AWS_REGION),
    AWS_ACCESS_KEY_ID: secret(localDefaults.AWS_ACCESS_KEY_ID),
    AWS_SECRET_ACCESS_KEY: secret(localDefaults.AWS_SECRET_ACCESS_KEY, 8),
    S3_BUCKET: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be an S3 bucket name (3-63 of a-z 0-9 . -)').default(localDefaults.S3_BUCKET),
    HCLOUD_ENDPOINT: url(['http', 'https'], localDefaults.HCLOUD_ENDPOINT),
    HCLOUD_TOKEN: secret(localDefaults.HCLOUD_TOKEN),
    /**
     * Several Hetzner projects, JSON `[{"name","token","serverLimit"?,"endpoint"?}]` in order of
     * preference; customers fill one, then the next (activities/cloud/fleet.ts). Absent: the one
     * project of HCLOUD_TOKEN.
     */
    HCLOUD_PROJECTS: z.string().transform((value, ctx) => {
      try {
        return JSON.parse(value) as unknown;
      } catch {
        ctx.addIssue({ code: 'custom', message: 'must be JSON: [{"name","token","serverLimit"?,"endpoint"?}, ...]' });
        return z.NEVER;
      }
    }).pipe(z.array(z.object({
      name: z.string().regex(/^[\w.-]{1,64}$/, 'each project needs a short name (letters, digits, . _ -)'),
      token: z.string().min(1, 'each project needs a token'),
      serverLimit: z.number().int().positive('a server limit is a positive whole number').optional(),
      endpoint: url(['http', 'https']).optional(),
    }), { message: 'must be a list of projects' }).min(1, 'must name at least one project')
      .refine((list) => new Set(list.map((p) => p.name)).size === list.length, 'project names must be unique')).optional(),
    ...mailFields,
    /** The prebuilt workflow bundle (worker/bundle.ts); absent: the workflow code is bundled at start. */
    WORKFLOW_BUNDLE: z.string().optional(),
    /** Run on the server before each backup's tar; absent: `openclaw backup create --verify` (none on the local cloud). */
    BACKUP_PRE_COMMAND: z.string().optional(),
    /** Run on the server after a restore put the files back; absent: `openclaw backup restore` (none on the local cloud). */
    BACKUP_POST_RESTORE_COMMAND: z.string().optional(),
  })
  .superRefine(
    ...productionRules({
      devDefaults: {
        AWS_ACCESS_KEY_ID: localDefaults.AWS_ACCESS_KEY_ID,
        AWS_SECRET_ACCESS_KEY: localDefaults.AWS_SECRET_ACCESS_KEY,
        HCLOUD_TOKEN: localDefaults.HCLOUD_TOKEN,
        MASTER_KEY: localDefaults.MASTER_KEY,
        DATABASE_URL: localDefaults.DATABASE_URL,
        HCLOUD_ENDPOINT: localDefaults.HCLOUD_ENDPOINT,
        AWS_ENDPOINT_URL_S3: localDefaults.AWS_ENDPOINT_URL_S3,
      },
      required: ['STRIPE_SECRET_KEY'],
    }),
  )
  .transform((env) => ({
    ...env,
    /** Which billing the worker talks to. */
    billing: env.STRIPE_SECRET_KEY ? ('stripe' as const) : ('local' as const),
    /** Which mail transport the worker uses. */
    mailer: env.RESEND_API_KEY ? ('resend' as const) : ('smtp' as const),
  }));

export type WorkerConfig = z.output<typeof workerConfigSchema>;

/** Parses the worker's config; throws ConfigError naming every bad variable. */
export function parseWorkerConfig(env: Env = process.env): WorkerConfig {
  return parseConfig(workerConfigSchema, env, 'worker');
}

/** The worker's entry point calls this: on bad configuration it prints one message and exits 1. */
export function loadWorkerConfig(env: Env = process.env): WorkerConfig {
  return loadConfigOrExit(workerConfigSchema, env, 'worker');
}

// `node worker/config.ts` checks the environment without starting anything.
if (import.meta.main) {
  const config = loadWorkerConfig();
  process.stdout.write(`worker: configuration OK (BERTH_MODE=${config.BERTH_MODE}, NODE_ENV=${config.NODE_ENV}, billing=${config.billing}, mailer=${config.mailer})\n`);
}

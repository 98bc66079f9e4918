import { z } from 'zod';
import { planPriceEnvSchema } from '../activities/billing/plans.ts';
import { commonFields, mailFields, loadConfigOrExit, localDefaults, parseConfig, port, productionRules, secret, type Env } from '../lib/config.ts';

/** The api/web server's environment: HTTP, sessions, Stripe webhooks, Temporal client, PostgreSQL. */
export const apiConfigSchema = z
  .object({
    ...commonFields,
    ...mailFields,
    ...planPriceEnvSchema.shape,
    PORT: port(localDefaults.PORT),
    /** Signs session cookies. */
    SESSION_SECRET: secret(localDefaults.SESSION_SECRET, 32),
    /**
     * Where the assistant's gateway listens, seen from the customer's server: `loopback` (production,
     * OpenClaw on 127.0.0.1) or `server-address` (the local cloud, whose servers share this host's network).
     */
    ASSISTANT_GATEWAY_HOST: z.enum(['loopback', 'server-address']).default('loopback'),
    STRIPE_WEBHOOK_SECRET: z
      .string()
      .regex(/^whsec_\w+$/, 'must be a Stripe webhook signing secret (whsec_...)')
      .default(localDefaults.STRIPE_WEBHOOK_SECRET),
  })
  .superRefine(
    ...productionRules({
      devDefaults: {
        SESSION_SECRET: localDefaults.SESSION_SECRET,
        STRIPE_WEBHOOK_SECRET: localDefaults.STRIPE_WEBHOOK_SECRET,
        MASTER_KEY: localDefaults.MASTER_KEY,
      },
      required: ['STRIPE_SECRET_KEY'],
    }),
  )
  .transform((env) => ({
    ...env,
    billing: env.STRIPE_SECRET_KEY ? ('stripe' as const) : ('local' as const),
  }));

export type ApiConfig = z.output<typeof apiConfigSchema>;

/** Parses the api's config; throws ConfigError naming every bad variable. */
export function parseApiConfig(env: Env = process.env): ApiConfig {
  return parseConfig(apiConfigSchema, env, 'api');
}

/** The api's entry point calls this: on bad configuration it prints one message and exits 1. */
export function loadApiConfig(env: Env = process.env): ApiConfig {
  return loadConfigOrExit(apiConfigSchema, env, 'api');
}

/** What the browser may see: an allow-list, so a new secret variable can never leak by default. */
export interface PublicConfig {
  appUrl: string;
  environment: ApiConfig['NODE_ENV'];
  billing: ApiConfig['billing'];
}

export function publicConfig(config: ApiConfig): PublicConfig {
  return { appUrl: config.APP_URL, environment: config.NODE_ENV, billing: config.billing };
}

// `node api/config.ts` checks the environment without starting anything.
if (import.meta.main) {
  const config = loadApiConfig();
  process.stdout.write(`api: configuration OK (NODE_ENV=${config.NODE_ENV}, port=${config.PORT}, billing=${config.billing})\n`);
}

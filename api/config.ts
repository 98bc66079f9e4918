import { z } from 'zod';
import { planPriceEnvSchema } from '../activities/billing/plans.ts';
import { commonFields, mailFields, loadConfigOrExit, localDefaults, parseConfig, port, productionRules, secret, type Env } from '../lib/config.ts';

/** Whole seconds within [min, max], with a default. */
function seconds(fallback: number, min: number, max: number) {
  const message = `must be a whole number of seconds from ${min} to ${max}`;
  return z.string().regex(/^\d{1,9}$/, message).transform(Number).refine((n) => n >= min && n <= max, message).default(fallback);
}

/** The api/web server's environment: HTTP, sessions, Stripe webhooks, Temporal client, PostgreSQL. */
export const apiConfigSchema = z
  .object({
    ...commonFields,
    ...mailFields,
    ...planPriceEnvSchema.shape,
    PORT: port(localDefaults.PORT),
    /** Signs verification and reset links. */
    SESSION_SECRET: secret(localDefaults.SESSION_SECRET, 32),
    /** A session ends this long after its last request (idle timeout). */
    SESSION_IDLE_SECONDS: seconds(24 * 3600, 1, 30 * 86400),
    /** A session ends this long after sign-in, however active (absolute lifetime). */
    SESSION_LIFETIME_SECONDS: seconds(7 * 86400, 1, 90 * 86400),
    /** Opening a terminal or changing the model API key needs a password typed within this window. */
    REAUTH_SECONDS: seconds(15 * 60, 1, 86400),
    /**
     * Which peers are proxies whose X-Forwarded-For names the client (Express's `trust proxy`):
     * `loopback` (a TLS proxy on this host), `uniquelocal` (one on a private network, e.g. compose),
     * a hop count, or addresses/CIDRs separated by commas.
     */
    TRUST_PROXY: z.string().regex(/^[\w.:/, -]{1,200}$/, 'must be loopback, uniquelocal, a hop count or addresses/CIDRs separated by commas').default('loopback'),
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
        DATABASE_URL: localDefaults.DATABASE_URL,
      },
      required: ['STRIPE_SECRET_KEY'],
    }),
  )
  .transform((env) => ({
    ...env,
    // Outside local mode STRIPE_SECRET_KEY is required, so the local checkout runs only in local mode.
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
  mode: ApiConfig['BERTH_MODE'];
  billing: ApiConfig['billing'];
}

export function publicConfig(config: ApiConfig): PublicConfig {
  return { appUrl: config.APP_URL, environment: config.NODE_ENV, mode: config.BERTH_MODE, billing: config.billing };
}

// `node api/config.ts` checks the environment without starting anything.
if (import.meta.main) {
  const config = loadApiConfig();
  process.stdout.write(`api: configuration OK (BERTH_MODE=${config.BERTH_MODE}, NODE_ENV=${config.NODE_ENV}, port=${config.PORT}, billing=${config.billing})\n`);
}

import Stripe from 'stripe';

/** The Stripe API version every request and every local event carries: the one the package pins. */
export const stripeApiVersion = Stripe.API_VERSION;

export interface StripeClientOptions {
  secretKey: string;
  /** Another API host, e.g. stripe-mock in tests: host, port and protocol. */
  host?: string;
  port?: number;
  protocol?: 'http' | 'https';
  /** Network retries inside one call; each carries the same Idempotency-Key. */
  maxNetworkRetries?: number;
  timeoutMs?: number;
}

/**
 * A Stripe client pinned to the package's API version. Only worker/ and api/ build one from
 * config; tests point it at stripe-mock.
 */
export function createStripeClient(opts: StripeClientOptions): Stripe {
  return new Stripe(opts.secretKey, {
    apiVersion: stripeApiVersion,
    host: opts.host,
    port: opts.port,
    protocol: opts.protocol,
    maxNetworkRetries: opts.maxNetworkRetries ?? 2,
    timeout: opts.timeoutMs ?? 20_000,
    telemetry: false,
    appInfo: { name: 'berth' },
  });
}

export { Stripe };

import type Stripe from 'stripe';
import { stripeApiVersion } from './stripe-client.ts';
import { errorMessage } from '../../lib/errors.ts';

/**
 * The Stripe API versions whose event payloads Berth reads (docs/decisions/013-stripe-api-versions.md).
 *
 * Stripe renders each webhook event in the endpoint's API version (or the account's default), and
 * since 2024-09-30.acacia ships breaking changes only in a new major release (basil, clover, ...);
 * the monthly versions of a release are additive. Berth reads the shapes that 2025-03-31.basil
 * introduced (period on subscription items, an invoice's subscription under `parent`, line prices
 * under `pricing`), unchanged through the major the stripe package pins. A version of any other
 * major, an older one, or a preview (`.preview`, `.dashboard`) is refused until someone checks it.
 */
export const supportedStripeMajors = ['basil', 'clover', 'dahlia', 'endive'] as const;

/** The first version of the oldest supported major. */
export const oldestSupportedStripeApiVersion = '2025-03-31.basil';

// Before 2024-09-30.acacia a version was only its date.
const versionPattern = /^(\d{4}-\d{2}-\d{2})(?:\.([a-z]+))?$/;

export type ApiVersionVerdict = { supported: true } | { supported: false; reason: string };

/** Whether Berth reads events rendered in `version` (an event's or endpoint's `api_version`). */
export function stripeApiVersionVerdict(version: string | null | undefined): ApiVersionVerdict {
  if (version === null || version === undefined || version === '') {
    return { supported: false, reason: 'the event names no API version' };
  }
  const match = versionPattern.exec(version);
  const supported = `${oldestSupportedStripeApiVersion} or later of ${supportedStripeMajors.join(', ')}`;
  if (!match) return { supported: false, reason: `API version ${version} is not a released version Berth reads (supported: ${supported})` };
  const [, date, major] = match as unknown as [string, string, string | undefined];
  if (date < oldestSupportedStripeApiVersion.slice(0, 10)) {
    return { supported: false, reason: `API version ${version} renders objects in a shape older than ${oldestSupportedStripeApiVersion} (supported: ${supported})` };
  }
  if (major === undefined || !(supportedStripeMajors as readonly string[]).includes(major)) {
    return { supported: false, reason: `API version ${version} belongs to a release Berth was not checked against (supported: ${supported})` };
  }
  return { supported: true };
}

/** One webhook endpoint as Stripe lists it (the fields the start-up check reads). */
export type EndpointListing = Pick<Stripe.WebhookEndpoint, 'id' | 'url' | 'status' | 'api_version'>;

export interface EndpointCheck {
  /** Enabled endpoints that deliver to this app's webhook URL. */
  endpoints: { id: string; apiVersion: string | null; effectiveVersion: string | null }[];
  /** Why the app must not run against this account; empty when it may. */
  problems: string[];
  /** What an operator should know but that does not stop the app. */
  warnings: string[];
}

/**
 * Judges the account's webhook endpoints for `webhookUrl`: each enabled one must render events in
 * a supported version. An endpoint without its own version uses the account's default, known
 * here only from a recent event (`accountVersion`, null when the account has none yet).
 */
export function judgeWebhookEndpoints(listing: readonly EndpointListing[], webhookUrl: string, accountVersion: string | null): EndpointCheck {
  const ours = listing.filter((e) => e.status === 'enabled' && sameUrl(e.url, webhookUrl));
  const check: EndpointCheck = { endpoints: [], problems: [], warnings: [] };
  if (ours.length === 0) check.warnings.push(`no enabled Stripe webhook endpoint delivers to ${webhookUrl}: billing events will only arrive through reconciliation`);
  for (const endpoint of ours) {
    const effective = endpoint.api_version ?? accountVersion;
    check.endpoints.push({ id: endpoint.id, apiVersion: endpoint.api_version, effectiveVersion: effective });
    if (effective === null) {
      check.warnings.push(`endpoint ${endpoint.id} uses the account's default API version, which is not known yet: pin it to ${stripeApiVersion}`);
      continue;
    }
    const verdict = stripeApiVersionVerdict(effective);
    if (!verdict.supported) {
      const source = endpoint.api_version === null ? "the account's default version" : 'its own version';
      check.problems.push(`endpoint ${endpoint.id} (${endpoint.url}) sends events in ${source} ${effective}: ${verdict.reason}. Set the endpoint's API version to ${stripeApiVersion} in Stripe (Workbench → Webhooks).`);
    }
  }
  return check;
}

/**
 * Lists the account's webhook endpoints and judges those delivering to `webhookUrl`. Throws only
 * when Stripe cannot be asked; the caller decides whether problems stop the process.
 */
export async function checkWebhookEndpoints(stripe: Stripe, webhookUrl: string): Promise<EndpointCheck> {
  const listing: EndpointListing[] = [];
  for await (const endpoint of stripe.webhookEndpoints.list({ limit: 100 })) listing.push(endpoint);
  let accountVersion: string | null = null;
  if (listing.some((e) => e.api_version === null && sameUrl(e.url, webhookUrl))) {
    // Events listed through the API are rendered in the account's version at their creation.
    const recent = await stripe.events.list({ limit: 1 });
    accountVersion = recent.data[0]?.api_version ?? null;
  }
  return judgeWebhookEndpoints(listing, webhookUrl, accountVersion);
}

function sameUrl(a: string, b: string): boolean {
  const norm = (u: string) => u.replace(/\/+$/, '').toLowerCase();
  return norm(a) === norm(b);
}

/** Raised at start-up when the account would send this app events it cannot read. */
export class UnsupportedStripeEndpointError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`Stripe would send this app events it cannot read:\n- ${problems.join('\n- ')}`);
    this.name = 'UnsupportedStripeEndpointError';
    this.problems = problems;
  }
}

/**
 * The start-up check of a process that receives Stripe's webhooks: throws
 * UnsupportedStripeEndpointError when an endpoint of this app renders events in a version Berth
 * does not read (the process must not start: every customer's events would need an operator).
 * Warnings are logged. If Stripe cannot be asked, that is logged too and the process starts: the
 * per-event check still refuses what it cannot read.
 */
export async function assertStripeEndpointsSupported(
  stripe: Stripe,
  webhookUrl: string,
  log: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void },
): Promise<EndpointCheck | null> {
  let check: EndpointCheck;
  try {
    check = await checkWebhookEndpoints(stripe, webhookUrl);
  } catch (err) {
    log.warn({ err: errorMessage(err) }, 'could not list Stripe webhook endpoints: their API version is not checked');
    return null;
  }
  for (const warning of check.warnings) log.warn({ webhookUrl }, warning);
  if (check.problems.length > 0) throw new UnsupportedStripeEndpointError(check.problems);
  log.info({ webhookUrl, endpoints: check.endpoints }, 'Stripe webhook endpoints send a supported API version');
  return check;
}

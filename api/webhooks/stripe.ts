import express, { Router, type Request, type Response } from 'express';
import Stripe from 'stripe';
import type { BillingEventDelivery } from '../../activities/billing/delivery.ts';
import type { Plans } from '../../activities/billing/plans.ts';
import { processStripeEvent } from '../../activities/billing/process-event.ts';
import type { Db } from '../../db/database.ts';
import type { Logger } from '../../lib/log.ts';

/** Stripe's own tolerance: a signature older (or newer) than this is refused as a possible replay. */
export const stripeSignatureToleranceSeconds = 300;

export const stripeWebhookPath = '/webhooks/stripe';

export interface StripeWebhookDeps {
  db: Db;
  plans: Plans;
  delivery: BillingEventDelivery;
  /** STRIPE_WEBHOOK_SECRET (whsec_...). */
  webhookSecret: string;
  log: Logger;
  /** For tests: the clock (ms since the epoch) the signature's timestamp is checked against. */
  now?: () => number;
}

export type SignatureCheck = { ok: true; event: Stripe.Event } | { ok: false; reason: string };

/**
 * Checks a webhook's Stripe-Signature over the exact bytes received: HMAC-SHA256 with the
 * endpoint secret, timestamp within 300 s. Nothing in an unverified body is trusted.
 */
export function verifyStripeSignature(
  body: Buffer | string,
  header: string | undefined,
  secret: string,
  nowMs?: number,
): SignatureCheck {
  if (!header) return { ok: false, reason: 'missing Stripe-Signature header' };
  try {
    const event = Stripe.webhooks.constructEvent(body, header, secret, stripeSignatureToleranceSeconds, undefined, nowMs);
    return { ok: true, event };
  } catch (err) {
    return { ok: false, reason: err instanceof Error ? err.message : 'signature verification failed' };
  }
}

/**
 * POST /webhooks/stripe. Mount it before any JSON body parser: the signature covers the raw bytes,
 * so this route reads its own raw body. 400 for a bad, stale or missing signature; 200 once the
 * event took effect (or was a duplicate, or a type Berth ignores, or one it cannot read and recorded
 * as needing attention: the same bytes retried would fail the same way); 500 only if the database or
 * Temporal could not be reached, so Stripe retries.
 */
export function createStripeWebhookRouter(deps: StripeWebhookDeps): Router {
  const router = Router();
  router.post(stripeWebhookPath, express.raw({ type: () => true, limit: '1mb' }), async (req: Request, res: Response) => {
    if (!Buffer.isBuffer(req.body)) {
      deps.log.error('stripe webhook received a parsed body: mount the router before express.json()');
      res.status(500).json({ error: 'webhook misconfigured' });
      return;
    }
    const check = verifyStripeSignature(req.body, req.get('stripe-signature'), deps.webhookSecret, deps.now?.());
    if (!check.ok) {
      deps.log.warn({ reason: check.reason }, 'stripe webhook refused');
      res.status(400).json({ error: 'invalid signature' });
      return;
    }
    const event = check.event;
    try {
      const outcome = await processStripeEvent(deps, event);
      res.status(200).json({ received: true, outcome });
    } catch (err) {
      deps.log.error({ err, eventId: event.id, type: event.type }, 'stripe event not processed; Stripe will retry');
      res.status(500).json({ error: 'not processed' });
    }
  });
  return router;
}

import express, { Router, type Request, type Response } from 'express';
import Stripe from 'stripe';
import type { BillingSessions, CheckoutInput, PortalInput } from '../../activities/billing/sessions.ts';
import { NoStripeCustomerError } from '../../activities/billing/sessions.ts';
import type { Plans } from '../../activities/billing/plans.ts';
import { findStripeCustomerId } from '../../activities/billing/store.ts';
import type { Db, Plan } from '../../db/database.ts';
import type { Logger } from '../../lib/log.ts';
import { buildCheckoutSession, buildEvent, buildInvoice, buildSubscription, stripeId, type LocalPaymentMethod, type LocalSubscription } from './stripe-objects.ts';
import { errorMessage } from '../../lib/errors.ts';

/**
 * Local billing, for running Berth with no Stripe keys: a checkout page where the customer "pays"
 * by card (paid at once) or by SEPA Direct Debit (Checkout completes unpaid; the debit succeeds or
 * fails later, as a dev trigger), a portal page, and dev triggers (renew, fail, cancel, resume,
 * expire, debit_paid, debit_failed). Every change is sent as
 * the events Stripe would send, built with the stripe package's types, signed with the local
 * webhook secret and POSTed to the real /webhooks/stripe endpoint: the same path as production.
 * State lives in memory: restarting the api forgets local subscriptions (check out again).
 */
export interface LocalBillingDeps {
  db: Db;
  plans: Plans;
  /** APP_URL: pages link back here. */
  appUrl: string;
  /** STRIPE_WEBHOOK_SECRET: the local events are signed with it. */
  webhookSecret: string;
  /** Where events are POSTed (default `${appUrl}/webhooks/stripe`). */
  webhookUrl?: string;
  log: Logger;
  /** Clock in unix seconds (tests). */
  now?: () => number;
  /** Length of one billing period in seconds (default 30 days). Shorter makes a dev story quick. */
  periodSeconds?: number;
  /** The signed-in user of a request (its Cookie header): checkout and portal pages show only their own. */
  signedInUserId?: (cookieHeader: string | null) => Promise<string | null>;
}

export const localBillingActions = ['renew', 'fail', 'cancel', 'resume', 'expire', 'debit_paid', 'debit_failed'] as const;
export type LocalBillingAction = (typeof localBillingActions)[number];
/** What a SEPA Direct Debit checkout awaits: the outcome of its first debit. */
const debitActions: readonly LocalBillingAction[] = ['debit_paid', 'debit_failed'];

export interface DeliveredEvent {
  id: string;
  type: string;
  status: number;
}

export interface LocalBilling {
  router: Router;
  sessions: BillingSessions;
  /** Runs a dev action for a user and delivers its events; throws if the user has no local subscription. */
  trigger(userId: string, action: LocalBillingAction): Promise<DeliveredEvent[]>;
  /**
   * Completes a checkout as the checkout page's buttons do: by card (paid) or by SEPA Direct Debit
   * (completed unpaid; `trigger(user, 'debit_paid' | 'debit_failed')` settles it later).
   */
  pay(checkoutSessionId: string, method?: LocalPaymentMethod): Promise<DeliveredEvent[]>;
  subscription(userId: string): Readonly<LocalSubscription> | undefined;
}

interface PendingCheckout {
  id: string;
  key: string;
  userId: string;
  email: string;
  plan: Plan;
  created: number;
  completed: boolean;
}

export function createLocalBilling(deps: LocalBillingDeps): LocalBilling {
  if (process.env.BERTH_MODE !== 'local') throw new Error('local billing runs only in local mode (BERTH_MODE=local)');
  const now = deps.now ?? (() => Math.floor(Date.now() / 1000));
  const period = deps.periodSeconds ?? 30 * 86400;
  const webhookUrl = deps.webhookUrl ?? `${deps.appUrl}/webhooks/stripe`;
  const checkouts = new Map<string, PendingCheckout>();
  const checkoutsByKey = new Map<string, string>();
  const subscriptions = new Map<string, LocalSubscription>();
  const customers = new Map<string, string>();
  const openInvoices = new Map<string, { id: string; periodStart: number; periodEnd: number; attempts: number }>();
  // A SEPA checkout's first invoice, open until the debit succeeds or fails.
  const pendingDebits = new Map<string, { sessionId: string; sessionCreated: number; invoiceId: string }>();
  // One user's actions run one after another, as Stripe serializes changes to one subscription.
  const queues = new Map<string, Promise<unknown>>();
  const serialize = <T>(userId: string, work: () => Promise<T>): Promise<T> => {
    const next = (queues.get(userId) ?? Promise.resolve()).then(work, work);
    queues.set(userId, next.catch(() => {}));
    return next;
  };

  async function send(events: Stripe.Event[]): Promise<DeliveredEvent[]> {
    const delivered: DeliveredEvent[] = [];
    for (const event of events) {
      const payload = JSON.stringify(event, null, 2);
      let status = 0;
      // Like Stripe: retry a failed delivery (here a few times, quickly).
      for (let attempt = 1; attempt <= 3; attempt++) {
        const header = Stripe.webhooks.generateTestHeaderString({ payload, secret: deps.webhookSecret });
        try {
          const res = await fetch(webhookUrl, { method: 'POST', headers: { 'content-type': 'application/json', 'stripe-signature': header }, body: payload });
          await res.body?.cancel();
          status = res.status;
        } catch (err) {
          deps.log.warn({ err, eventId: event.id }, 'local billing: webhook delivery failed');
        }
        if (status >= 200 && status < 300) break;
        await new Promise((resolve) => setTimeout(resolve, 200 * attempt));
      }
      delivered.push({ id: event.id, type: event.type, status });
      if (status < 200 || status >= 300) throw new Error(`webhook refused local event ${event.type} (${event.id}): HTTP ${status}`);
    }
    return delivered;
  }

  function invoiceFor(sub: LocalSubscription, opts: { id?: string; status: 'open' | 'paid'; periodStart: number; periodEnd: number; attempts: number; reason: 'subscription_create' | 'subscription_cycle' }) {
    const created = now();
    return buildInvoice(sub, {
      id: opts.id ?? stripeId('in'),
      status: opts.status,
      billingReason: opts.reason,
      periodStart: opts.periodStart,
      periodEnd: opts.periodEnd,
      attemptCount: opts.attempts,
      created,
      nextPaymentAttempt: opts.status === 'open' ? created + 3 * 86400 : null,
    }, deps.appUrl);
  }

  async function pay(checkoutSessionId: string, method: LocalPaymentMethod = 'card'): Promise<DeliveredEvent[]> {
    const checkout = checkouts.get(checkoutSessionId);
    if (!checkout) throw new Error(`no local checkout session ${checkoutSessionId}`);
    return serialize(checkout.userId, async () => {
      if (checkout.completed) return [];
      const t = now();
      const plan = deps.plans[checkout.plan];
      const customerId = (await findStripeCustomerId(deps.db, checkout.userId)) ?? customers.get(checkout.userId) ?? stripeId('cus');
      customers.set(checkout.userId, customerId);
      const delayed = method === 'sepa_debit';
      const sub: LocalSubscription = {
        userId: checkout.userId, email: checkout.email, plan: plan.id, priceId: plan.stripePriceId, productId: `prod_berth_${plan.id}`,
        amountMinor: plan.displayPrice.amountMinor, currency: plan.displayPrice.currency, customerId, subscriptionId: stripeId('sub'), itemId: stripeId('si'),
        // A debit still processing leaves the subscription incomplete and its first invoice open.
        status: delayed ? 'incomplete' : 'active', created: t, periodStart: t, periodEnd: t + period, cancelAtPeriodEnd: false, canceledAt: null, endedAt: null, latestInvoiceId: null,
      };
      const invoice = invoiceFor(sub, { status: delayed ? 'open' : 'paid', periodStart: t, periodEnd: t + period, attempts: 1, reason: 'subscription_create' });
      sub.latestInvoiceId = invoice.id;
      subscriptions.set(checkout.userId, sub);
      checkout.completed = true;
      const session = buildCheckoutSession(sub, { sessionId: checkout.id, created: checkout.created, successUrl: successUrl(checkout.id), cancelUrl: cancelUrl(), invoiceId: invoice.id,
        method, paymentStatus: delayed ? 'unpaid' : 'paid' });
      if (delayed) {
        pendingDebits.set(checkout.userId, { sessionId: checkout.id, sessionCreated: checkout.created, invoiceId: invoice.id });
        // Stripe's order for a delayed method: no invoice.paid until the money arrives.
        return send([
          buildEvent('customer.subscription.created', buildSubscription(sub), { created: t }),
          buildEvent('checkout.session.completed', session, { created: t }),
        ]);
      }
      // Stripe's order for a new subscription paid by card; Berth must not depend on it.
      return send([
        buildEvent('customer.subscription.created', buildSubscription(sub), { created: t }),
        buildEvent('invoice.paid', invoice, { created: t }),
        buildEvent('checkout.session.completed', session, { created: t }),
      ]);
    });
  }

  async function trigger(userId: string, action: LocalBillingAction): Promise<DeliveredEvent[]> {
    return serialize(userId, async () => {
      const sub = subscriptions.get(userId);
      if (!sub) throw new Error(`user ${userId} has no local subscription: check out first`);
      const t = now();
      const before = buildSubscription(sub);
      const events: Stripe.Event[] = [];
      const updated = (previous: Record<string, unknown>) => buildEvent('customer.subscription.updated', buildSubscription(sub), { created: now(), previousAttributes: previous });
      const debit = pendingDebits.get(userId);
      if (debitActions.includes(action) !== (debit !== undefined)) {
        throw new Error(debit ? 'the first payment (SEPA Direct Debit) is still pending: debit_paid or debit_failed first' : 'no SEPA Direct Debit is pending');
      }
      if (sub.status === 'incomplete_expired') throw new Error('the subscription never started: check out again');
      switch (action) {
        case 'debit_paid':
        case 'debit_failed': {
          // The bank's answer, days after Checkout completed: Stripe reports it on the session and the invoice.
          const paid = action === 'debit_paid';
          pendingDebits.delete(userId);
          const session = buildCheckoutSession(sub, { sessionId: debit!.sessionId, created: debit!.sessionCreated, successUrl: successUrl(debit!.sessionId), cancelUrl: cancelUrl(),
            invoiceId: debit!.invoiceId, method: 'sepa_debit', paymentStatus: paid ? 'paid' : 'unpaid' });
          const invoice = invoiceFor(sub, { id: debit!.invoiceId, status: paid ? 'paid' : 'open', periodStart: sub.periodStart, periodEnd: sub.periodEnd, attempts: 1, reason: 'subscription_create' });
          // A first payment that never came ends the subscription (incomplete_expired: Stripe's terminal status).
          Object.assign(sub, paid ? { status: 'active' } : { status: 'incomplete_expired', endedAt: t });
          events.push(
            buildEvent(paid ? 'checkout.session.async_payment_succeeded' : 'checkout.session.async_payment_failed', session, { created: t }),
            paid ? buildEvent('invoice.paid', invoice, { created: t }) : buildEvent('invoice.payment_failed', invoice, { created: t }),
            updated({ status: before.status }),
          );
          break;
        }
        case 'renew': {
          if (sub.status === 'canceled') throw new Error('the subscription has ended: check out again');
          // Pays the open invoice of a failed renewal, or else starts the next period.
          const open = openInvoices.get(userId);
          const periodStart = open?.periodStart ?? sub.periodEnd;
          const periodEnd = open?.periodEnd ?? sub.periodEnd + period;
          const invoice = invoiceFor(sub, { id: open?.id, status: 'paid', periodStart, periodEnd, attempts: (open?.attempts ?? 0) + 1, reason: 'subscription_cycle' });
          openInvoices.delete(userId);
          Object.assign(sub, { status: 'active', periodStart, periodEnd, latestInvoiceId: invoice.id });
          events.push(buildEvent('invoice.paid', invoice, { created: t }), updated({ items: before.items, status: before.status, latest_invoice: before.latest_invoice }));
          break;
        }
        case 'fail': {
          if (sub.status === 'canceled') throw new Error('the subscription has ended');
          const open = openInvoices.get(userId) ?? { id: stripeId('in'), periodStart: sub.periodEnd, periodEnd: sub.periodEnd + period, attempts: 0 };
          open.attempts += 1;
          openInvoices.set(userId, open);
          const invoice = invoiceFor(sub, { id: open.id, status: 'open', periodStart: open.periodStart, periodEnd: open.periodEnd, attempts: open.attempts, reason: 'subscription_cycle' });
          // Stripe moves to the new period at renewal and marks the subscription past_due.
          Object.assign(sub, { status: 'past_due', periodStart: open.periodStart, periodEnd: open.periodEnd, latestInvoiceId: invoice.id });
          events.push(buildEvent('invoice.payment_failed', invoice, { created: t }), updated({ items: before.items, status: before.status, latest_invoice: before.latest_invoice }));
          break;
        }
        case 'cancel':
        case 'resume': {
          if (sub.status === 'canceled') throw new Error('the subscription has ended');
          sub.cancelAtPeriodEnd = action === 'cancel';
          sub.canceledAt = action === 'cancel' ? t : null;
          events.push(updated({ cancel_at_period_end: before.cancel_at_period_end, cancel_at: before.cancel_at, canceled_at: before.canceled_at }));
          break;
        }
        case 'expire': {
          if (sub.status === 'canceled') return [];
          // What Stripe does at the end of a period that will not renew (or when payment retries ran out).
          Object.assign(sub, { status: 'canceled', endedAt: t, canceledAt: sub.canceledAt ?? t });
          openInvoices.delete(userId);
          events.push(buildEvent('customer.subscription.deleted', buildSubscription(sub), { created: t }));
          break;
        }
      }
      return send(events);
    });
  }

  const successUrl = (id: string) => `${deps.appUrl}/billing/success?session_id=${encodeURIComponent(id)}`;
  const cancelUrl = () => `${deps.appUrl}/billing/canceled`;

  const sessions: BillingSessions = {
    async createCheckoutSession(input: CheckoutInput) {
      // Same request, same session: what the Idempotency-Key gives with Stripe.
      const key = `${input.userId}:checkout:${input.plan}:${input.requestId}`;
      let id = checkoutsByKey.get(key);
      if (!id) {
        id = stripeId('cs_test');
        checkouts.set(id, { id, key, userId: input.userId, email: input.email, plan: input.plan, created: now(), completed: false });
        checkoutsByKey.set(key, id);
      }
      return { id, url: `${deps.appUrl}/local-billing/checkout/${id}` };
    },
    async createPortalSession(input: PortalInput) {
      if (!subscriptions.has(input.userId) && !(await findStripeCustomerId(deps.db, input.userId))) throw new NoStripeCustomerError(input.userId);
      return { id: `bps_local_${input.requestId}`, url: `${deps.appUrl}/local-billing/portal/${encodeURIComponent(input.userId)}` };
    },
  };

  const router = Router();
  const form = express.urlencoded({ extended: false });

  /** Whether the request's signed-in user may see `userId`'s pages (no check configured: yes). */
  const ownedBy = async (req: Request, userId: string) =>
    !deps.signedInUserId || (await deps.signedInUserId(req.get('cookie') ?? null)) === userId;

  router.get('/local-billing/checkout/:id', async (req: Request, res: Response) => {
    const found = checkouts.get(String(req.params.id));
    const checkout = found && (await ownedBy(req, found.userId)) ? found : undefined;
    if (!checkout) {
      res.status(404).type('html').send(page('Checkout not found', '<p>This checkout session does not exist (the api may have restarted).</p>'));
      return;
    }
    const plan = deps.plans[checkout.plan];
    res.type('html').send(page(`Pay for Berth ${plan.name}`, `
      <p class="note">Local billing: no card is charged. Paying sends Stripe-shaped, signed events to this server's webhook.</p>
      <p><strong>${esc(plan.name)}</strong> — ${esc(formatMoney(plan.displayPrice.amountMinor, plan.displayPrice.currency))} per ${esc(plan.displayPrice.interval)}</p>
      <p>Billed to ${esc(checkout.email)}</p>
      ${checkout.completed ? '<p>Already paid.</p>' : `
      <form method="post" action="/local-billing/checkout/${esc(checkout.id)}/pay"><button type="submit" data-testid="local-pay">Pay ${esc(formatMoney(plan.displayPrice.amountMinor, plan.displayPrice.currency))} by card</button></form>
      <form method="post" action="/local-billing/checkout/${esc(checkout.id)}/pay"><input type="hidden" name="method" value="sepa_debit"><button type="submit" data-testid="local-pay-sepa">Pay by SEPA Direct Debit</button> <small>(the money arrives days later: settle it on the dev page)</small></form>
      <form method="post" action="/local-billing/checkout/${esc(checkout.id)}/cancel"><button type="submit">Cancel</button></form>`}`));
  });

  router.post('/local-billing/checkout/:id/pay', form, async (req: Request, res: Response) => {
    const id = String(req.params.id);
    const found = checkouts.get(id);
    if (found && !(await ownedBy(req, found.userId))) {
      res.status(404).type('html').send(page('Checkout not found', '<p>This checkout session does not exist.</p>'));
      return;
    }
    const method = (req.body as { method?: unknown } | undefined)?.method ?? 'card';
    if (method !== 'card' && method !== 'sepa_debit') {
      res.status(400).type('html').send(page('Payment not completed', `<p>Unknown payment method ${esc(String(method))}: card or sepa_debit.</p>`));
      return;
    }
    try {
      await pay(id, method);
      res.redirect(303, successUrl(id));
    } catch (err) {
      deps.log.error({ err }, 'local checkout failed');
      res.status(502).type('html').send(page('Payment not completed', `<p>${esc(errorMessage(err))}</p>`));
    }
  });

  router.post('/local-billing/checkout/:id/cancel', (_req: Request, res: Response) => {
    res.redirect(303, cancelUrl());
  });

  router.get('/local-billing/portal/:userId', async (req: Request, res: Response) => {
    const userId = String(req.params.userId);
    const sub = (await ownedBy(req, userId)) ? subscriptions.get(userId) : undefined;
    res.type('html').send(page('Manage your subscription', sub ? `${describe(sub)}${actionButtons(sub.userId, sub.cancelAtPeriodEnd ? ['resume'] : ['cancel'])}<p><a href="${esc(deps.appUrl)}/billing">Back to Berth</a></p>` : '<p>No local subscription.</p>'));
  });

  // Dev page and triggers: renewals, payment failures and cancellations on demand.
  router.get('/local-billing/dev', (_req: Request, res: Response) => {
    const rows = [...subscriptions.values()].map((sub) => `<section><h2>${esc(sub.userId)}</h2>${describe(sub)}${actionButtons(sub.userId,
      pendingDebits.has(sub.userId) ? debitActions : localBillingActions.filter((a) => !debitActions.includes(a)))}</section>`);
    res.type('html').send(page('Local billing (dev)', rows.join('') || '<p>No local subscriptions yet: check out from the billing page.</p>'));
  });

  router.post('/local-billing/dev/:userId/:action', form, async (req: Request, res: Response) => {
    const action = String(req.params.action);
    if (!(localBillingActions as readonly string[]).includes(action)) {
      res.status(404).json({ error: `unknown action ${action}; one of ${localBillingActions.join(', ')}` });
      return;
    }
    try {
      const events = await trigger(String(req.params.userId), action as LocalBillingAction);
      if (req.is('application/x-www-form-urlencoded')) res.redirect(303, req.get('referer')?.includes('/portal/') ? `/local-billing/portal/${encodeURIComponent(String(req.params.userId))}` : '/local-billing/dev');
      else res.json({ events });
    } catch (err) {
      res.status(409).json({ error: errorMessage(err) });
    }
  });

  return { router, sessions, trigger, pay, subscription: (userId) => subscriptions.get(userId) };
}

/** The local billing pages and triggers (see createLocalBilling; its `sessions` share this state). */
export function createLocalBillingRouter(deps: LocalBillingDeps): Router {
  return createLocalBilling(deps).router;
}

function describe(sub: LocalSubscription): string {
  const date = (s: number) => new Date(s * 1000).toISOString().slice(0, 16).replace('T', ' ');
  return `<dl><dt>Plan</dt><dd>${esc(sub.plan)}</dd><dt>Status</dt><dd>${esc(sub.status)}</dd><dt>Period</dt><dd>${date(sub.periodStart)} → ${date(sub.periodEnd)} UTC</dd><dt>Cancel at period end</dt><dd>${sub.cancelAtPeriodEnd ? 'yes' : 'no'}</dd><dt>Subscription</dt><dd><code>${esc(sub.subscriptionId)}</code></dd></dl>`;
}

function actionButtons(userId: string, actions: readonly LocalBillingAction[]): string {
  return actions.map((a) => `<form method="post" action="/local-billing/dev/${encodeURIComponent(userId)}/${a}" style="display:inline"><button type="submit">${a}</button></form>`).join(' ');
}

function formatMoney(amountMinor: number, currency: string): string {
  return new Intl.NumberFormat('en', { style: 'currency', currency: currency.toUpperCase() }).format(amountMinor / 100);
}

function esc(value: string): string {
  return value.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

function page(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}.note{background:#fff8e1;padding:.5rem}button{margin:.25rem 0;padding:.5rem 1rem}dt{font-weight:600}</style>
</head><body><h1>${esc(title)}</h1>${body}</body></html>`;
}

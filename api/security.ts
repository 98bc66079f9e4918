/**
 * The web server's HTTP safeguards, as Express middleware: security headers (helmet, with a CSP
 * nonce per response), same-origin-only state changes, request body limits, no-store on pages, and
 * error answers that carry no internal detail.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ErrorRequestHandler, RequestHandler } from 'express';
import helmet from 'helmet';
import type { Logger } from '../lib/log.ts';
import { errorMessage } from '../lib/errors.ts';

/** Bytes a form post to the web app may carry (the largest form, settings, is under 2 KiB). */
export const webBodyLimitBytes = 64 * 1024;

/** Where Stripe's own pages live: a checkout or portal redirect after a form post goes there. */
const stripePages = ['https://checkout.stripe.com', 'https://billing.stripe.com'];

/** The nonce of this response's inline scripts; set by {@link cspNonce}. */
export function nonceOf(res: ServerResponse): string {
  return (res as ServerResponse & { locals?: { cspNonce?: string } }).locals?.cspNonce ?? '';
}

/** A fresh 128-bit nonce per response, for the CSP header and the scripts React Router renders. */
export const cspNonce: RequestHandler = (_req, res, next) => {
  res.locals.cspNonce = randomBytes(16).toString('base64');
  next();
};

/**
 * helmet with Berth's policy: scripts only with this response's nonce (and what they load:
 * 'strict-dynamic'), everything else from this origin, never framed; HSTS for a year; no referrer
 * to any other site (reset and verification links carry tokens in their query). The referrer policy
 * is same-origin rather than no-referrer: under no-referrer a browser sends `Origin: null` with the
 * app's own plain form posts, which the same-origin check must then refuse. Inline styles are
 * allowed: the terminal (xterm) sets them at run time, and a style cannot run code.
 */
export function securityHeaders(opts: { https: boolean }): RequestHandler {
  return helmet({
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'strict-dynamic'", (_req: IncomingMessage, res: ServerResponse) => `'nonce-${nonceOf(res)}'`],
        styleSrc: ["'self'", "'unsafe-inline'"],
        imgSrc: ["'self'", 'data:'],
        fontSrc: ["'self'"],
        connectSrc: ["'self'"],
        frameAncestors: ["'none'"],
        formAction: ["'self'", ...stripePages],
        baseUri: ["'none'"],
        objectSrc: ["'none'"],
        ...(opts.https ? { upgradeInsecureRequests: [] } : {}),
      },
    },
    strictTransportSecurity: { maxAge: 365 * 24 * 3600, includeSubDomains: true },
    referrerPolicy: { policy: 'same-origin' },
    xFrameOptions: { action: 'deny' },
  });
}

/** Methods that change state; the others must not, so they need no origin check. */
const safeMethods = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Refuses a state-changing request another site's page made: an Origin other than the app's (or
 * "null"), or a browser's Sec-Fetch-Site other than same-origin. A request with neither header
 * comes from no browser, so it carries no cookie a browser would add on its own. `exempt` paths
 * (Stripe's webhook: signed, no cookies) are let through.
 */
export function sameOriginOnly(appOrigin: string, exempt: readonly string[] = []): RequestHandler {
  return (req, res, next) => {
    if (safeMethods.has(req.method) || exempt.includes(req.path)) return next();
    const origin = req.get('origin');
    const site = req.get('sec-fetch-site');
    if ((origin !== undefined && origin !== appOrigin) || (site !== undefined && site !== 'same-origin' && site !== 'none')) {
      res.status(403).type('text').send('This form must be sent from Berth’s own pages.');
      return;
    }
    next();
  };
}

/**
 * Caps request bodies before anything reads them: 413 past `maxBytes`, 411 for a body without a
 * Content-Length (a chunked upload; browsers always send the length of a form). Node's parser
 * then delivers at most Content-Length bytes, so the check holds for the whole body.
 */
export function bodyLimit(maxBytes: number): RequestHandler {
  return (req, res, next) => {
    const length = req.get('content-length');
    const chunked = req.get('transfer-encoding') !== undefined;
    if (length === undefined && chunked) {
      res.status(411).set('connection', 'close').type('text').send('A request body needs a Content-Length.');
      return;
    }
    if (length !== undefined && !(Number(length) <= maxBytes)) {
      res.status(413).set('connection', 'close').type('text').send('That request is too large.');
      return;
    }
    next();
  };
}

/** Pages are personal (and some carry tokens in their URL): never stored by a browser or proxy. */
export const noStore: RequestHandler = (_req, res, next) => {
  res.set('cache-control', 'no-store');
  next();
};

/**
 * The last handler: a short answer in words, never a stack or an internal message (Express's
 * default prints both outside production). Client errors keep their status (e.g. 413 from a body
 * parser); anything else is logged and answered 500.
 */
export function plainErrors(log: Logger): ErrorRequestHandler {
  return (err: unknown, req, res, _next) => {
    const status = typeof (err as { status?: unknown }).status === 'number' ? (err as { status: number }).status : 500;
    if (status >= 500) log.error({ err: errorMessage(err), path: req.path }, 'request failed');
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const message = status === 413 ? 'That request is too large.' : status >= 500 ? 'Something went wrong on our side; please try again.' : 'That request could not be read.';
    res.status(status >= 400 && status < 600 ? status : 500).set('connection', status === 413 ? 'close' : 'keep-alive').type('text').send(message);
  };
}

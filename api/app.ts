import path from 'node:path';
import express, { type Express } from 'express';
import { createRequestHandler } from '@react-router/express';
import { RouterContextProvider, type RouterContext, type ServerBuild } from 'react-router';
import type { Logger } from '../lib/log.ts';
import type { WebServices } from './services.ts';
import type { RequestMeta } from '../web/context.ts';
import { errorMessage } from '../lib/errors.ts';
import { bodyLimit, cspNonce, nonceOf, noStore, plainErrors, sameOriginOnly, securityHeaders, webBodyLimitBytes } from './security.ts';
import { stripeWebhookPath } from './webhooks/stripe.ts';

export interface AppDeps {
  log: Logger;
  /** Folder of the web app's build (react-router build): client/ assets and server/index.js. */
  buildDir: string;
  /** What loaders and actions use (web/context.ts). */
  services: WebServices;
  /** Routers mounted before the web app, e.g. webhooks (which need the raw body) and local billing. */
  routers?: express.Router[];
  /** Checks that must pass for /readyz (database, Temporal). */
  readiness?: Record<string, () => Promise<void>>;
  /** APP_URL: its origin is the only one whose pages may post forms here. */
  appUrl: string;
  /** Express's `trust proxy`: which peers' X-Forwarded-For names the client (TRUST_PROXY). */
  trustProxy: string;
  /** React Router's server mode: 'development' adds error details to pages, so only in local mode. */
  mode: 'production' | 'development';
}

/** The api/web server: JSON API, webhooks, and the web app's request handler. */
export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', trustProxyValue(deps.trustProxy));
  const appUrl = new URL(deps.appUrl);

  app.use(cspNonce, securityHeaders({ https: appUrl.protocol === 'https:' }));
  app.use(sameOriginOnly(appUrl.origin, [stripeWebhookPath]));
  // The webhook reads its own raw body, up to Stripe's largest events; everything else is forms.
  app.use((req, res, next) => (req.path === stripeWebhookPath ? next() : bodyLimit(webBodyLimitBytes)(req, res, next)));

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  // Anyone can ask: the answer names what failed, never why (the reason goes to the log).
  app.get('/readyz', async (_req, res) => {
    const results: Record<string, string> = {};
    let ok = true;
    for (const [name, check] of Object.entries(deps.readiness ?? {})) {
      try {
        await check();
        results[name] = 'ok';
      } catch (err) {
        ok = false;
        results[name] = 'failing';
        deps.log.warn({ check: name, err: errorMessage(err) }, 'readiness check failed');
      }
    }
    res.status(ok ? 200 : 503).json({ status: ok ? 'ok' : 'unavailable', checks: results });
  });

  for (const router of deps.routers ?? []) app.use(router);

  // Fingerprinted assets can be cached for good; everything else briefly.
  app.use('/assets', express.static(path.join(deps.buildDir, 'client', 'assets'), { immutable: true, maxAge: '1y' }));
  app.use(express.static(path.join(deps.buildDir, 'client'), { maxAge: '1h' }));

  const serverBuild = path.join(deps.buildDir, 'server', 'index.js');
  let build: Promise<ServerBuild> | undefined;
  const loadBuild = () => (build ??= import(serverBuild) as Promise<ServerBuild>);
  app.all(
    '/{*path}',
    noStore,
    createRequestHandler({
      build: loadBuild,
      mode: deps.mode,
      // The context keys are the web build's own objects (exported from its entry.server).
      getLoadContext: async (req, res) => {
        const entry = (await loadBuild()).entry.module as { servicesContext?: RouterContext<WebServices>; requestContext?: RouterContext<RequestMeta> };
        if (!entry.servicesContext || !entry.requestContext) throw new Error('the web build does not export servicesContext and requestContext from its entry.server');
        const context = new RouterContextProvider();
        context.set(entry.servicesContext, deps.services);
        context.set(entry.requestContext, { clientIp: req.ip ?? req.socket.remoteAddress ?? 'unknown', cspNonce: nonceOf(res) });
        return context;
      },
    }),
  );
  app.use(plainErrors(deps.log));
  return app;
}

/** TRUST_PROXY as Express takes it: a hop count is a number, anything else a list of names or addresses. */
function trustProxyValue(value: string): number | string {
  return /^\d+$/.test(value) ? Number(value) : value;
}

import path from 'node:path';
import express, { type Express } from 'express';
import { createRequestHandler } from '@react-router/express';
import { RouterContextProvider, type RouterContext, type ServerBuild } from 'react-router';
import type { Logger } from '../lib/log.ts';
import type { WebServices } from './services.ts';
import { errorMessage } from '../lib/errors.ts';

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
}

/** The api/web server: JSON API, webhooks, and the web app's request handler. */
export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', async (_req, res) => {
    const results: Record<string, string> = {};
    let ok = true;
    for (const [name, check] of Object.entries(deps.readiness ?? {})) {
      try {
        await check();
        results[name] = 'ok';
      } catch (err) {
        ok = false;
        results[name] = errorMessage(err);
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
    createRequestHandler({
      build: loadBuild,
      mode: process.env.NODE_ENV === 'production' ? 'production' : 'development',
      // The context key is the web build's own object (exported from its entry.server).
      getLoadContext: async () => {
        const entry = (await loadBuild()).entry.module as { servicesContext?: RouterContext<WebServices> };
        if (!entry.servicesContext) throw new Error('the web build does not export servicesContext from its entry.server');
        const servicesContext = entry.servicesContext;
        const context = new RouterContextProvider();
        context.set(servicesContext, deps.services);
        return context;
      },
    }),
  );
  return app;
}

import path from 'node:path';
import express, { type Express } from 'express';
import { createRequestHandler } from '@react-router/express';
import type { ServerBuild } from 'react-router';
import type { Logger } from '../lib/log.ts';

export interface AppDeps {
  log: Logger;
  /** Folder of the web app's build (react-router build): client/ assets and server/index.js. */
  buildDir: string;
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
        results[name] = err instanceof Error ? err.message : String(err);
      }
    }
    res.status(ok ? 200 : 503).json({ status: ok ? 'ok' : 'unavailable', checks: results });
  });

  // Fingerprinted assets can be cached for good; everything else briefly.
  app.use('/assets', express.static(path.join(deps.buildDir, 'client', 'assets'), { immutable: true, maxAge: '1y' }));
  app.use(express.static(path.join(deps.buildDir, 'client'), { maxAge: '1h' }));

  const serverBuild = path.join(deps.buildDir, 'server', 'index.js');
  app.all(
    '/{*path}',
    createRequestHandler({
      build: () => import(serverBuild) as Promise<ServerBuild>,
      mode: process.env.NODE_ENV === 'production' ? 'production' : 'development',
    }),
  );
  return app;
}

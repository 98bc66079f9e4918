/**
 * The api/web process: parses its configuration (exits with one clear message if it is bad),
 * connects to PostgreSQL and Temporal, and serves the JSON API, webhooks and the web app.
 */
import path from 'node:path';
import { sql } from 'kysely';
import { Client, Connection } from '@temporalio/client';
import { loadApiConfig, publicConfig } from './config.ts';
import { createWebServices } from './services.ts';
import { createApp } from './app.ts';
import { createDb } from '../db/client.ts';
import { createLogger } from '../lib/log.ts';
import { rootDir } from '../scripts/services/paths.ts';

const config = loadApiConfig();
const log = createLogger('web', config.LOG_LEVEL);
const db = createDb(config.DATABASE_URL);
const connection = await Connection.connect({ address: config.TEMPORAL_ADDRESS });
const temporal = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });

const services = createWebServices({
  db,
  temporal,
  config: publicConfig(config),
  secureCookies: config.APP_URL.startsWith('https://'),
  log,
});

const app = createApp({
  log,
  services,
  buildDir: path.join(rootDir, 'build'),
  readiness: {
    database: async () => {
      await sql`select 1`.execute(db);
    },
    temporal: async () => {
      await connection.workflowService.getSystemInfo({});
    },
  },
});

const server = app.listen(config.PORT, () => log.info({ port: config.PORT, url: config.APP_URL }, 'web server listening'));

async function shutdown(signal: string) {
  log.info({ signal }, 'shutting down');
  server.close();
  server.closeAllConnections();
  await Promise.allSettled([db.destroy(), connection.close()]);
  process.exit(0);
}
process.once('SIGTERM', () => void shutdown('SIGTERM'));
process.once('SIGINT', () => void shutdown('SIGINT'));

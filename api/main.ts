/**
 * The api/web process: parses its configuration (exits with one clear message if it is bad),
 * connects to PostgreSQL and Temporal, and serves the JSON API, webhooks and the web app.
 */
import path from 'node:path';
import { sql } from 'kysely';
import { Client, Connection } from '@temporalio/client';
import { loadApiConfig, publicConfig } from './config.ts';
import { createWebServices, passwordResetMail, passwordResetMailName } from './services.ts';
import { createApp } from './app.ts';
import { createDb } from '../db/client.ts';
import { createPlans } from '../activities/billing/plans.ts';
import { createStripeClient } from '../activities/billing/stripe-client.ts';
import { assertStripeEndpointsSupported, UnsupportedStripeEndpointError } from '../activities/billing/api-versions.ts';
import { createStripeSessions } from '../activities/billing/sessions.ts';
import { createTemporalBillingDelivery } from '../activities/billing/delivery.ts';
import { createStripeWebhookRouter } from './webhooks/stripe.ts';
import { createLocalBilling } from './local-billing/index.ts';
import { createMailPreviewRouter } from './dev/mail-preview.ts';
import { createMailActivities } from '../activities/mail/send.ts';
import { createMailTransport } from '../activities/mail/transport.ts';
import { customerWorkflowStart, signalActivity } from '../lib/lifecycle-client.ts';
import { masterKeysFrom } from '../lib/secrets.ts';
import { assertKeyringCoversUsage, KeyringIncomplete } from '../activities/keys/rotation.ts';
import { attachLive } from './live.ts';
import { createLiveSessionRegistry, listenForEndedSessions, type SessionsEnded } from './live-sessions.ts';
import { createThrottle } from './auth/throttle.ts';
import { createMailOutbox } from './mail-outbox.ts';
import { sessionOfRequest, type SessionPolicy } from './auth/sessions.ts';
import { createLogger } from '../lib/log.ts';
import { rootDir } from '../lib/paths.ts';
import { exitIfObjectWrapAddonLoaded } from '../lib/native-addons.ts';
import { errorMessage } from '../lib/errors.ts';

// Everything above is loaded (ssh2 for the terminal and chat among it): no addon that can abort the process.
exitIfObjectWrapAddonLoaded('web');

const config = loadApiConfig();
const log = createLogger('web', config.LOG_LEVEL);
const db = createDb(config.DATABASE_URL);
const connection = await Connection.connect({ address: config.TEMPORAL_ADDRESS });
const temporal = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });

const plans = createPlans(config);
const lifecycle = customerWorkflowStart({ taskQueue: config.TEMPORAL_TASK_QUEUE, plans });
const delivery = createTemporalBillingDelivery({ client: temporal, ...lifecycle });
const webhooks = createStripeWebhookRouter({ db, plans, delivery, webhookSecret: config.STRIPE_WEBHOOK_SECRET, log });
const localMode = config.BERTH_MODE === 'local';
// Local mode without a Stripe key: the local checkout stands in for Stripe and sends signed events
// through the same webhook. Outside local mode a Stripe key is required, so this never runs there.
const local = config.STRIPE_SECRET_KEY || !localMode
  ? null
  : createLocalBilling({ db, plans, appUrl: config.APP_URL, webhookUrl: `http://127.0.0.1:${config.PORT}/webhooks/stripe`,
    webhookSecret: config.STRIPE_WEBHOOK_SECRET, log,
    signedInUserId: async (cookie) => (await sessionOfRequest(db, cookie, sessionPolicy))?.user.id ?? null });
const stripe = config.STRIPE_SECRET_KEY ? createStripeClient({ secretKey: config.STRIPE_SECRET_KEY }) : null;
const billingSessions = local?.sessions ?? createStripeSessions({ stripe: stripe!, db, plans, appUrl: config.APP_URL });
if (stripe) {
  // Refuse to start rather than acknowledge every customer's events as unreadable.
  try {
    await assertStripeEndpointsSupported(stripe, `${config.APP_URL}/webhooks/stripe`, log);
  } catch (err) {
    if (!(err instanceof UnsupportedStripeEndpointError)) throw err;
    log.fatal({ problems: err.problems }, err.message);
    process.exit(1);
  }
}

const masterKeys = masterKeysFrom({ id: config.MASTER_KEY_ID, base64: config.MASTER_KEY }, config.MASTER_KEYS_PREVIOUS);
// A key retires only when nothing uses it: refuse to run without one that still seals stored data.
await assertKeyringCoversUsage(db, masterKeys).catch((err: unknown) => {
  if (!(err instanceof KeyringIncomplete)) return log.warn({ err: errorMessage(err) }, 'could not check the master keyring against stored data');
  log.fatal({ err: err.message }, 'master keyring incomplete');
  process.exit(1);
});
const sessionPolicy: SessionPolicy = {
  idleMs: config.SESSION_IDLE_SECONDS * 1000,
  lifetimeMs: config.SESSION_LIFETIME_SECONDS * 1000,
  reauthMs: config.REAUTH_SECONDS * 1000,
};
const mailer = createMailActivities({
  db,
  transport: createMailTransport({ resendApiKey: config.RESEND_API_KEY, resendBaseUrl: config.RESEND_BASE_URL, smtpUrl: config.SMTP_URL }),
  appUrl: config.APP_URL,
  from: config.MAIL_FROM,
  log,
});
const outbox = createMailOutbox({ db, masterKeys, sendMail: mailer.sendMail, log,
  composers: { [passwordResetMailName]: passwordResetMail({ db, tokenSecret: config.SESSION_SECRET, appUrl: config.APP_URL }) } });
const throttle = createThrottle({ databaseUrl: config.DATABASE_URL });
// Every live socket (terminal, chat) of this process, by session: an ended session closes its sockets here,
// and the announcement through PostgreSQL closes them in every other web process too.
const liveSockets = createLiveSessionRegistry();
const sessionEvents = listenForEndedSessions({ db, databaseUrl: config.DATABASE_URL, log, onEnded: (ended) => liveSockets.closeEnded(ended) });
const sessionsEnded = (ended: SessionsEnded) => {
  liveSockets.closeEnded(ended);
  sessionEvents.announce(ended).catch((err: unknown) =>
    log.warn({ err: errorMessage(err) }, 'could not announce ended sessions; other processes close their sockets at expiry checks'));
};
const services = createWebServices({
  masterKeys,
  db,
  temporal,
  config: publicConfig(config),
  sessionPolicy,
  throttle,
  log,
  plans,
  billingSessions,
  lifecycle,
  outbox,
  onSessionsEnded: sessionsEnded,
  appUrl: config.APP_URL,
  tokenSecret: config.SESSION_SECRET,
  onRegistered: (user) => signalActivity(temporal, lifecycle, user.id, 'registered'),
});

const app = createApp({
  log,
  services,
  routers: [
    webhooks,
    ...(local ? [local.router] : []),
    ...(localMode ? [createMailPreviewRouter({ appUrl: config.APP_URL })] : []),
  ],
  buildDir: path.join(rootDir, 'build'),
  appUrl: config.APP_URL,
  trustProxy: config.TRUST_PROXY,
  mode: localMode ? 'development' : 'production',
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
// The terminal and the chat: WebSockets on the same server, to the customer's own server over SSH.
const live = attachLive(server, {
  db,
  masterKeys,
  log,
  appUrl: config.APP_URL,
  gatewayHost: config.ASSISTANT_GATEWAY_HOST,
  sessionPolicy,
  registry: liveSockets,
  onActivity: (userId, source) => {
    signalActivity(temporal, lifecycle, userId, source).catch((err: unknown) =>
      log.warn({ err: errorMessage(err), userId }, 'could not signal activity'));
  },
});

async function shutdown(signal: string) {
  log.info({ signal }, 'shutting down');
  live.close();
  server.close();
  server.closeAllConnections();
  await Promise.allSettled([outbox.stop(), sessionEvents.close(), throttle.close()]);
  await Promise.allSettled([db.destroy(), connection.close()]);
  process.exit(0);
}
process.once('SIGTERM', () => void shutdown('SIGTERM'));
process.once('SIGINT', () => void shutdown('SIGINT'));

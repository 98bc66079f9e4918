/**
 * The worker process: parses its configuration (one clear message and exit 1 if it is bad), builds
 * the real clients from it, and runs Berth's workflows and activities on the task queue.
 */
import { S3Client } from '@aws-sdk/client-s3';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { loadWorkerConfig } from './config.ts';
import { ensureSchedules } from './schedules.ts';
import { createDb } from '../db/client.ts';
import { createLogger } from '../lib/log.ts';
import { masterKeysFrom } from '../lib/secrets.ts';
import { assertKeyringCoversUsage, KeyringIncomplete } from '../activities/keys/rotation.ts';
import { customerWorkflowStart } from '../lib/lifecycle-client.ts';
import { backupProgressSignal } from '../workflows/messages.ts';
import { workflowsPath } from './bundle.ts';
import { createHetznerClient } from '../activities/cloud/hetzner/client.ts';
import { createCloudActivities, createServerAccess } from '../activities/cloud/provisioning.ts';
import { createCloudFleet } from '../activities/cloud/fleet.ts';
import { createBackupService } from '../activities/backups/service.ts';
import { createKyselyBackupStore } from '../activities/backups/store.ts';
import { connectByFingerprint, createBackupActivities } from '../activities/backups/activities.ts';
import { heartbeatInterceptor } from '../activities/heartbeat.ts';
import { createMailTransport } from '../activities/mail/transport.ts';
import { createMailActivities } from '../activities/mail/send.ts';
import { createLifecycleMailActivities } from '../activities/mail/lifecycle.ts';
import { createProjectionActivities } from '../activities/projection/index.ts';
import { createPlans } from '../activities/billing/plans.ts';
import { createStripeClient } from '../activities/billing/stripe-client.ts';
import { createTemporalBillingDelivery } from '../activities/billing/delivery.ts';
import { createBillingActivities } from '../activities/billing/index.ts';
import type { BillingReconciliationActivities, LifecycleActivities } from '../activities/contracts.ts';
import { exitIfObjectWrapAddonLoaded } from '../lib/native-addons.ts';
import { errorMessage } from '../lib/errors.ts';

// Everything above is loaded: an addon that can abort the process must not be among it.
exitIfObjectWrapAddonLoaded('worker');

const config = loadWorkerConfig();
const log = createLogger('worker', config.LOG_LEVEL);
const db = createDb(config.DATABASE_URL);
const masterKeys = masterKeysFrom({ id: config.MASTER_KEY_ID, base64: config.MASTER_KEY }, config.MASTER_KEYS_PREVIOUS);
// A key retires only when nothing uses it: refuse to run without one that still seals stored data.
await assertKeyringCoversUsage(db, masterKeys).catch((err: unknown) => {
  if (!(err instanceof KeyringIncomplete)) return log.warn({ err: errorMessage(err) }, 'could not check the master keyring against stored data');
  log.fatal({ err: err.message }, 'master keyring incomplete');
  process.exit(1);
});
const plans = createPlans(config);
// The local cloud's stand-ins (assistant, shared network) only in local mode, never by accident.
const localCloud = config.BERTH_MODE === 'local' && ['127.0.0.1', 'localhost', '[::1]'].includes(new URL(config.HCLOUD_ENDPOINT).hostname);

const clientConnection = await Connection.connect({ address: config.TEMPORAL_ADDRESS });
const client = new Client({ connection: clientConnection, namespace: config.TEMPORAL_NAMESPACE });

// One client per project: each keeps its own project's request budget.
const fleet = config.HCLOUD_PROJECTS && createCloudFleet({
  db,
  log,
  projects: config.HCLOUD_PROJECTS.map((p) => ({
    name: p.name,
    serverLimit: p.serverLimit ?? null,
    client: createHetznerClient({ endpoint: p.endpoint ?? config.HCLOUD_ENDPOINT, token: p.token, log }),
  })),
});
const cloudDeps = {
  hetzner: fleet ? fleet.projects[0]!.client : createHetznerClient({ endpoint: config.HCLOUD_ENDPOINT, token: config.HCLOUD_TOKEN, log }),
  ...(fleet ? { fleet } : {}),
  db,
  masterKeys,
  log,
  // The local cloud's servers run a stand-in assistant and share the host's network.
  userDataVariant: localCloud ? ('local' as const) : ('production' as const),
  gatewayHost: localCloud ? ('server-address' as const) : ('loopback' as const),
};
const s3 = new S3Client({
  endpoint: config.AWS_ENDPOINT_URL_S3,
  region: config.AWS_REGION,
  forcePathStyle: true,
  credentials: { accessKeyId: config.AWS_ACCESS_KEY_ID, secretAccessKey: config.AWS_SECRET_ACCESS_KEY },
});
const backupService = createBackupService({
  s3,
  bucket: config.S3_BUCKET,
  masterKeys: masterKeys.keys,
  currentKeyId: masterKeys.currentKeyId,
  store: createKyselyBackupStore(db),
  log,
  connect: connectByFingerprint,
  // The assistant's state; production first asks OpenClaw for a consistent copy of its databases.
  root: '/home/berth',
  paths: ['.openclaw'],
  stateDir: '/home/berth/.local/state/berth-backup',
  // Never copy live SQLite files: OpenClaw writes a consistent copy first (the local stand-in has none).
  preBackupCommand: config.BACKUP_PRE_COMMAND ?? (localCloud ? undefined : 'openclaw backup create --verify'),
  postRestoreCommand: config.BACKUP_POST_RESTORE_COMMAND ?? (localCloud ? undefined : 'openclaw backup restore'),
});
const sender = createMailActivities({
  db,
  transport: createMailTransport({ resendApiKey: config.RESEND_API_KEY, resendBaseUrl: config.RESEND_BASE_URL, smtpUrl: config.SMTP_URL }),
  appUrl: config.APP_URL,
  from: config.MAIL_FROM,
  log,
});
const billing = createBillingActivities({
  stripe: config.STRIPE_SECRET_KEY ? createStripeClient({ secretKey: config.STRIPE_SECRET_KEY }) : null,
  db,
  plans,
  delivery: createTemporalBillingDelivery({ client, ...customerWorkflowStart({ taskQueue: config.TEMPORAL_TASK_QUEUE, plans }) }),
  log,
});

const activities: LifecycleActivities & BillingReconciliationActivities = {
  ...createCloudActivities(cloudDeps),
  ...createBackupActivities({
    db, service: backupService, plans, sshTarget: createServerAccess(cloudDeps).sshTarget,
    // Progress shows in the customer's state query; it is best effort, so a failed signal is only logged.
    reportProgress: async (workflowId, progress) => {
      try {
        await client.workflow.getHandle(workflowId).signal(backupProgressSignal, progress);
      } catch (err) {
        log.warn({ workflowId, backupId: progress.backupId, err: errorMessage(err) }, 'backup progress signal failed');
      }
    },
  }),
  ...createLifecycleMailActivities({ db, sender, plans, appUrl: config.APP_URL }),
  ...createProjectionActivities({ db }),
  reconcileStripeEvents: () => billing.reconcileStripeEvents(),
};

const connection = await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
const worker = await Worker.create({
  connection,
  namespace: config.TEMPORAL_NAMESPACE,
  taskQueue: config.TEMPORAL_TASK_QUEUE,
  // Production loads the bundle the image built (worker/bundle.ts); elsewhere the code is bundled at start.
  ...(config.WORKFLOW_BUNDLE ? { workflowBundle: { codePath: config.WORKFLOW_BUNDLE } } : { workflowsPath }),
  activities,
  // Every activity heartbeats on a timer for its whole life: a dead worker is noticed, cancellation delivered.
  interceptors: { activity: [heartbeatInterceptor] },
});

log.info(await ensureSchedules(client, config.TEMPORAL_TASK_QUEUE), 'schedules');
log.info({ taskQueue: config.TEMPORAL_TASK_QUEUE, workflows: config.WORKFLOW_BUNDLE ? 'prebuilt bundle' : 'bundled at start', cloud: localCloud ? 'local' : 'hetzner', cloudProjects: fleet ? fleet.projects.map((p) => p.name) : 1, billing: config.billing, mailer: config.mailer }, 'worker ready');

// SIGINT/SIGTERM: the SDK's default shutdown signals; run() resolves once in-flight tasks finish.
await worker.run();
await Promise.allSettled([clientConnection.close(), connection.close(), db.destroy()]);
s3.destroy();
log.info('worker stopped');

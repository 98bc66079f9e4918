/**
 * A Temporal worker running the provisioning workflow with the real cloud activities, as a child
 * process the crash test can SIGKILL. Configured by one JSON environment variable
 * (BERTH_PROVISIONING_WORKER); prints "ready" when polling.
 */
import { NativeConnection, Runtime, DefaultLogger, Worker } from '@temporalio/worker';
import { createHetznerClient } from '../../activities/cloud/hetzner/client.ts';
import { heartbeatInterceptor } from '../../activities/heartbeat.ts';
import { createCloudActivities } from '../../activities/cloud/provisioning.ts';
import { createDb } from '../../db/client.ts';
import { createLogger } from '../../lib/log.ts';
import { masterKeysFrom } from '../../lib/secrets.ts';

export interface ProvisioningWorkerConfig {
  temporalAddress: string;
  taskQueue: string;
  bundlePath: string;
  hcloudEndpoint: string;
  databaseUrl: string;
  schema: string;
  masterKeyBase64: string;
}

const config = JSON.parse(process.env.BERTH_PROVISIONING_WORKER ?? '') as ProvisioningWorkerConfig;
Runtime.install({ logger: new DefaultLogger('ERROR') });
const log = createLogger('provisioning-worker', 'warn');
const db = createDb(config.databaseUrl, { schema: config.schema, max: 4 });
const hetzner = createHetznerClient({ endpoint: config.hcloudEndpoint, token: 't', actionPoll: { initialMs: 50, maxMs: 200 } });
const activities = createCloudActivities({
  hetzner, db, log,
  masterKeys: masterKeysFrom({ id: 'crash-1', base64: config.masterKeyBase64 }),
  userDataVariant: 'local',
  gatewayHost: 'server-address',
  ssh: { pollMs: 100, waitMs: 30_000, installWaitMs: 60_000 },
});
const connection = await NativeConnection.connect({ address: config.temporalAddress });
const worker = await Worker.create({
  connection,
  taskQueue: config.taskQueue,
  workflowBundle: { codePath: config.bundlePath },
  activities,
  interceptors: { activity: [heartbeatInterceptor] },
  // No sticky cache: after a kill, the next worker picks the workflow up at once.
  maxCachedWorkflows: 0,
  shutdownGraceTime: '100ms',
});
process.stdout.write('ready\n');
await worker.run();
await connection.close();
await hetzner.close();
await db.destroy();

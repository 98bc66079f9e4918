/**
 * Master key rotation, run with the worker's environment (it reaches the database and object storage):
 *   node scripts/master-keys.ts status      which key ids still seal something, and how much
 *   node scripts/master-keys.ts reencrypt   move everything under older keys to MASTER_KEY_ID
 * Rotation: make a new key current (MASTER_KEY, MASTER_KEY_ID) and list the old one in
 * MASTER_KEYS_PREVIOUS; restart; run `reencrypt`; when `status` shows the old id unused, remove it
 * from MASTER_KEYS_PREVIOUS. Processes refuse to start while a key in use is missing.
 */
import { S3Client } from '@aws-sdk/client-s3';
import { loadWorkerConfig } from '../worker/config.ts';
import { createDb } from '../db/client.ts';
import { createLogger } from '../lib/log.ts';
import { masterKeysFrom } from '../lib/secrets.ts';
import { keyUsage, keysInUse, reencryptAll } from '../activities/keys/rotation.ts';

const command = process.argv[2];
if (command !== 'status' && command !== 'reencrypt') {
  process.stderr.write('usage: node scripts/master-keys.ts status|reencrypt\n');
  process.exit(2);
}
const config = loadWorkerConfig();
const db = createDb(config.DATABASE_URL, { max: 2 });
const masterKeys = masterKeysFrom({ id: config.MASTER_KEY_ID, base64: config.MASTER_KEY }, config.MASTER_KEYS_PREVIOUS);
const s3 = new S3Client({ endpoint: config.AWS_ENDPOINT_URL_S3, region: config.AWS_REGION, forcePathStyle: true,
  credentials: { accessKeyId: config.AWS_ACCESS_KEY_ID, secretAccessKey: config.AWS_SECRET_ACCESS_KEY } });
try {
  if (command === 'reencrypt') {
    const moved = await reencryptAll({ db, masterKeys, s3, bucket: config.S3_BUCKET, log: createLogger('master-keys', config.LOG_LEVEL) });
    process.stdout.write(`re-encrypted under ${masterKeys.currentKeyId}: ${moved.secrets} secrets, ${moved.mails} queued mails, ${moved.backups} backup keys\n`);
  }
  const usage = await keyUsage(db);
  for (const id of Object.keys(masterKeys.keys).sort()) {
    const uses = [`${usage.secrets[id] ?? 0} secrets`, `${usage.mails[id] ?? 0} queued mails`, `${usage.backups[id] ?? 0} backups`].join(', ');
    const unused = !keysInUse(usage).includes(id);
    process.stdout.write(`${id}${id === masterKeys.currentKeyId ? ' (current)' : ''}: ${uses}${unused && id !== masterKeys.currentKeyId ? ' — unused: it can retire' : ''}\n`);
  }
} finally {
  s3.destroy();
  await db.destroy();
}

/**
 * The fleet-wide backup prune over many customers: each customer gets three verified backups in the
 * database and MinIO (a newest one inside retention, two past it), then the prune the Schedule runs
 * (`pruneExpiredBackups`) deletes what retention allows. Measured: how long it takes, per customer and per
 * deleted object, and that exactly the expired objects are gone.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import type { Client } from '@temporalio/client';
import { createBackupActivities } from '../../activities/backups/activities.ts';
import { createBackupService } from '../../activities/backups/service.ts';
import { createKyselyBackupStore } from '../../activities/backups/store.ts';
import { createPlans } from '../../activities/billing/plans.ts';
import { createDb } from '../../db/client.ts';
import { migrateToLatest } from '../../db/migrate.ts';
import { createLogger } from '../../lib/log.ts';
import { minioClient, type MinioServer } from '../../scripts/services/minio.ts';

export async function benchPrune(opts: { databaseUrl: string; client: Client; minio: MinioServer; customers: number; say: (line: string) => void }) {
  const { minio, customers, say } = opts;
  const db = createDb(opts.databaseUrl, { max: 8 });
  await migrateToLatest(db);
  const s3 = minioClient(minio.endpoint, minio.accessKeyId, minio.secretAccessKey);
  const bucket = 'bench-prune';
  const day = 86_400_000;
  const now = Date.now();
  try {
    say(`prune: ${customers} customers × 3 backups into PostgreSQL and MinIO…`);
    const t0 = Date.now();
    const users: string[] = [];
    for (let i = 0; i < customers; i += 500) {
      const batch = Array.from({ length: Math.min(500, customers - i) }, (_, j) => ({ email: `prune-${i + j}-${randomUUID()}@example.com`, passwordHash: 'x', name: 'P' }));
      users.push(...(await db.insertInto('users').values(batch).returning('id').execute()).map((r) => r.id));
    }
    const rows = users.flatMap((userId) => [0, 1, 2].map((age) => {
      const id = randomUUID();
      return {
        id, userId, serverId: null, kind: 'full' as const, parentId: null, sizeBytes: 1024, sha256: randomBytes(32).toString('hex'),
        objectKey: `backups/${userId}/${id}`, encryptionKeyId: 'k', status: 'completed' as const,
        createdAt: new Date(now - (age * 10 + 1) * day), verifiedAt: new Date(now - (age * 10 + 1) * day),
        // The newest is inside retention; the two older ones expired.
        expiresAt: new Date(now + (age === 0 ? 6 : -(age * 10)) * day),
      };
    }));
    for (let i = 0; i < rows.length; i += 1000) await db.insertInto('backups').values(rows.slice(i, i + 1000)).execute();
    const body = randomBytes(1024);
    let next = 0;
    await Promise.all(Array.from({ length: 32 }, async () => {
      while (next < rows.length) {
        const r = rows[next++]!;
        await s3.send(new PutObjectCommand({ Bucket: bucket, Key: r.objectKey, Body: body }));
      }
    }));
    say(`prune: seeded ${rows.length} backups in ${((Date.now() - t0) / 1000).toFixed(0)} s; pruning…`);

    const service = createBackupService({
      s3, bucket, store: createKyselyBackupStore(db), log: createLogger('bench-prune', 'warn'),
      masterKeys: { k: randomBytes(32) }, currentKeyId: 'k', paths: ['.openclaw'],
    });
    const activities = createBackupActivities({
      db, service, plans: createPlans(),
      sshTarget: () => Promise.reject(new Error('the prune needs no server')),
      reportProgress: async () => {},
    });
    const t1 = Date.now();
    const { deletedBackupIds } = await activities.pruneExpiredBackups({ now: new Date(now).toISOString() });
    const seconds = (Date.now() - t1) / 1000;
    let left = 0;
    let token: string | undefined;
    do {
      const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
      left += page.KeyCount ?? 0;
      token = page.NextContinuationToken;
    } while (token);
    const row = {
      customers, backups: rows.length, deleted: deletedBackupIds.length, objectsLeft: left, seconds: Math.round(seconds * 10) / 10,
      msPerCustomer: Math.round((seconds * 1000 / customers) * 10) / 10, deletionsPerSecond: Math.round(deletedBackupIds.length / seconds),
      ok: deletedBackupIds.length === customers * 2 && left === customers,
    };
    say(JSON.stringify(row));
    return row;
  } finally {
    s3.destroy();
    await db.destroy();
  }
}

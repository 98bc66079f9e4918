import { execSync } from 'node:child_process';
import { S3Client } from '@aws-sdk/client-s3';
import { startMinio } from '../scripts/services/minio.ts';
import { freePort } from '../scripts/services/process.ts';
import { startSshd } from '../test/support/sshd.ts';
import { createLogger } from '../lib/log.ts';
import { createBackupService, createMemoryBackupStore } from '../activities/backups/index.ts';
execSync('mkdir -p /tmp/mt/src && head -c 40M /dev/urandom > /tmp/mt/src/data.bin');
const [sshd, minio] = await Promise.all([startSshd(), startMinio({ dataDir: '/tmp/mt/minio3', port: await freePort(), consolePort: await freePort(), accessKeyId: 'bench', secretAccessKey: 'bench-secret', buckets: ['bench'], sink: () => {} })]);
try {
  const s3 = new S3Client({ endpoint: minio.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'bench', secretAccessKey: 'bench-secret' } });
  let parts = 0;
  s3.middlewareStack.add((next) => async (args) => {
    const input = args.input as { PartNumber?: number };
    if (input.PartNumber !== undefined) console.log('part', input.PartNumber);
    if (input.PartNumber !== undefined && ++parts === 2) throw Object.assign(new Error('injected: storage unavailable'), { $fault: 'server' });
    return next(args);
  }, { step: 'initialize', name: 'inj' });
  const svc = createBackupService({ s3, bucket: 'bench', keyPrefix: 't/', masterKeys: { k: Buffer.alloc(32, 1) }, currentKeyId: 'k', store: createMemoryBackupStore(), log: createLogger('x', 'debug'),
    paths: ['tmp/mt/src'], stateDir: '/tmp/mt/state', partSize: 5 << 20 });
  const t = setInterval(() => console.log('still waiting', parts), 5000);
  await svc.backup({ userId: 'u', ssh: sshd.target, onProgress: (p) => console.log(p) , progressIntervalMs: 0}).then(() => console.log('ok?'), (e) => console.log('rejected', (e as Error).message));
  clearInterval(t);
} finally { await sshd.stop(); await minio.stop(); }

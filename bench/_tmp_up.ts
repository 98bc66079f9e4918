import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { S3Client } from '@aws-sdk/client-s3';
import { startMinio } from '../scripts/services/minio.ts';
import { freePort } from '../scripts/services/process.ts';
import { createPartUpload } from '../activities/backups/upload.ts';
const minio = await startMinio({ dataDir: '/tmp/mt/minio2', port: await freePort(), consolePort: await freePort(), accessKeyId: 'bench', secretAccessKey: 'bench-secret', buckets: ['bench'], sink: () => {} });
try {
  const s3 = new S3Client({ endpoint: minio.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'bench', secretAccessKey: 'bench-secret' } });
  let parts = 0;
  s3.middlewareStack.add((next) => async (args) => {
    const input = args.input as { PartNumber?: number };
    if (input.PartNumber !== undefined && ++parts === 2) throw Object.assign(new Error('injected: storage unavailable'), { $fault: 'server' });
    return next(args);
  }, { step: 'initialize', name: 'inj' });
  const up = createPartUpload({ s3, bucket: 'bench', key: 'x', partSize: 5 << 20, queueSize: 2 });
  const data = randomBytes(40 << 20);
  const src = Readable.from((function* () { for (let i = 0; i < 40; i++) yield data.subarray(i << 20, (i + 1) << 20); })());
  const t = setTimeout(() => console.log('HUNG', { parts }), 10000);
  await pipeline(src, up.stream).then(() => console.log('ok?'), (e) => console.log('rejected', (e as Error).message));
  await up.cleanedUp();
  console.log('cleaned');
  clearTimeout(t);
} finally { await minio.stop(); }

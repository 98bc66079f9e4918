import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { S3Client, CreateBucketCommand, HeadBucketCommand } from '@aws-sdk/client-s3';
import { startProcess, httpOk, type LineSink, type ManagedProcess } from '../../lib/process.ts';
import { cacheDir } from '../../lib/paths.ts';

export interface MinioServer {
  endpoint: string;
  consoleUrl: string;
  accessKeyId: string;
  secretAccessKey: string;
  process: ManagedProcess;
  stop(): Promise<void>;
}

/** An S3 client for MinIO (path-style addressing, any region). */
export function minioClient(endpoint: string, accessKeyId: string, secretAccessKey: string): S3Client {
  return new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId, secretAccessKey } });
}

/** Creates the bucket unless it exists already. */
export async function ensureBucket(s3: S3Client, bucket: string): Promise<void> {
  try {
    await s3.send(new HeadBucketCommand({ Bucket: bucket }));
  } catch {
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  }
}

/** Starts MinIO (built by scripts/bootstrap) on loopback, waits for its health endpoint, creates the buckets. */
export async function startMinio(opts: {
  dataDir: string;
  port: number;
  consolePort: number;
  accessKeyId: string;
  secretAccessKey: string;
  buckets: string[];
  sink?: LineSink;
}): Promise<MinioServer> {
  await mkdir(opts.dataDir, { recursive: true });
  const endpoint = `http://127.0.0.1:${opts.port}`;
  const process = await startProcess({
    name: 'minio',
    command: path.join(cacheDir, 'bin', 'minio'),
    args: ['server', opts.dataDir, '--quiet', '--address', `127.0.0.1:${opts.port}`, '--console-address', `127.0.0.1:${opts.consolePort}`],
    env: {
      ...globalThis.process.env,
      MINIO_ROOT_USER: opts.accessKeyId,
      MINIO_ROOT_PASSWORD: opts.secretAccessKey,
      MINIO_BROWSER_REDIRECT: 'off',
      MINIO_UPDATE: 'off',
    },
    sink: opts.sink,
    ready: () => httpOk(`${endpoint}/minio/health/ready`),
  });
  const s3 = minioClient(endpoint, opts.accessKeyId, opts.secretAccessKey);
  try {
    for (const bucket of opts.buckets) await ensureBucket(s3, bucket);
  } finally {
    s3.destroy();
  }
  return {
    endpoint,
    consoleUrl: `http://localhost:${opts.consolePort}`,
    accessKeyId: opts.accessKeyId,
    secretAccessKey: opts.secretAccessKey,
    process,
    stop: () => process.stop(),
  };
}

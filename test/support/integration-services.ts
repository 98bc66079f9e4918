/**
 * Global setup of the integration tier: real PostgreSQL, Temporal dev server and MinIO, each on free
 * ports with data in a temporary folder, stopped (and the folder removed) when the tier ends.
 * Suites find them through process.env (DATABASE_URL, TEMPORAL_ADDRESS, AWS_*, S3_BUCKET) and
 * give themselves their own PostgreSQL schema (test/support/db.ts), task queue and bucket prefix.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from '../../lib/process.ts';
import { startPostgres, testSettings } from '../../scripts/services/postgres.ts';
import { startTemporalDevServer } from '../../scripts/services/temporal.ts';
import { startMinio } from '../../scripts/services/minio.ts';

const quiet = () => {};

export default async function setup(): Promise<() => Promise<void>> {
  const dir = await mkdtemp(path.join(tmpdir(), 'berth-integration-'));
  const stops: (() => Promise<void>)[] = [];
  const teardown = async () => {
    for (const stop of stops.reverse()) await stop().catch(() => {});
    await rm(dir, { recursive: true, force: true });
  };
  try {
    // Each service's stop is kept as soon as it runs, so a failure to start another stops it too.
    const started = <T extends { stop(): Promise<void> }>(service: Promise<T>) =>
      service.then((s) => { stops.push(s.stop); return s; });
    const results = await Promise.allSettled([
      started(startPostgres({ dataDir: path.join(dir, 'postgres'), port: await freePort(), sink: quiet, settings: testSettings })),
      started(startTemporalDevServer({ dataDir: path.join(dir, 'temporal'), port: await freePort(), uiPort: null, sink: quiet })),
      started(startMinio({ dataDir: path.join(dir, 'minio'), port: await freePort(), consolePort: await freePort(),
        accessKeyId: 'berth-test', secretAccessKey: 'berth-test-secret', buckets: ['berth-test'], sink: quiet })),
    ] as const);
    // Wait for all of them before giving up, so none is left running behind a failed start.
    for (const r of results) if (r.status === 'rejected') throw r.reason;
    const [postgres, temporal, minio] = results.map((r) => (r as PromiseFulfilledResult<unknown>).value) as [
      Awaited<ReturnType<typeof startPostgres>>, Awaited<ReturnType<typeof startTemporalDevServer>>, Awaited<ReturnType<typeof startMinio>>,
    ];
    Object.assign(process.env, {
      DATABASE_URL: postgres.url,
      TEMPORAL_ADDRESS: temporal.address,
      AWS_ENDPOINT_URL_S3: minio.endpoint,
      AWS_ACCESS_KEY_ID: minio.accessKeyId,
      AWS_SECRET_ACCESS_KEY: minio.secretAccessKey,
      AWS_REGION: 'us-east-1',
      S3_BUCKET: 'berth-test',
    });
  } catch (err) {
    await teardown();
    throw err;
  }
  return teardown;
}

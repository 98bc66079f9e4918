/**
 * Proves the failure rules: an SSH connection dropped mid-backup and a storage error mid-upload leave
 * no completed record and no open multipart upload; a worker killed mid-backup leaves no completed
 * record and nothing it started running (the agent holding the key, the ssh of the stream), its retry completes with its own object without touching the dead attempt's upload, and the
 * prune sweeps that upload once no attempt can still be alive; two attempts at the same backup running
 * at once (a timed-out attempt beside its retry) never remove each other's object and only the attempt
 * that owns the record completes it; a corrupt, truncated or missing object and a wrong or unknown
 * master key make restore refuse with BackupCorrupt / KeyUnavailable before anything lands in place,
 * and restoreLatest falls back to the previous verified backup.
 */
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { ErrorType } from '../../lib/errors.ts';
import { alive, descendants } from '../support/processes.ts';
import { objectKeys, openUploads, sh, startBackupWorld, testS3, type BackupWorld } from '../support/backup-fixtures.ts';

let world: BackupWorld;
beforeAll(async () => {
  world = await startBackupWorld('backup_faults');
  // Incompressible, so the stream is long enough to be cut in the middle.
  await sh('mkdir -p "$1" && head -c 40M /dev/urandom > "$1/data.bin" && printf "note\\n" > "$1/note.txt" && chown -R "$2" "$1"',
    path.join(world.dir, 'src'), `${world.account.uid}:${world.account.gid}`);
});
afterAll(async () => {
  await world?.stop();
});

async function rowOf(id: string) {
  return world.database.db.selectFrom('backups').selectAll().where('id', '=', id).executeTakeFirst();
}

/** The attempts at a backup (each wrote, or may have written, its own object). */
async function attemptsOf(backupId: string) {
  return world.database.db.selectFrom('backupAttempts').selectAll().where('backupId', '=', backupId).orderBy('startedAt').execute();
}

async function expectNothingLeft(backupId: string) {
  const row = await rowOf(backupId);
  expect(row?.status).not.toBe('completed');
  expect(row?.verifiedAt ?? null).toBeNull();
  // MinIO lists multipart uploads only for an exact object key, so ask about each attempt's.
  for (const attempt of await attemptsOf(backupId)) {
    expect(await openUploads(world.s3, world.bucket, attempt.objectKey)).toEqual([]);
    expect(attempt.finishedAt).toBeInstanceOf(Date);
  }
  expect((await objectKeys(world.s3, world.bucket, world.keyPrefix)).filter((k) => k.includes(backupId))).toEqual([]);
}

/** The world's store with markCompleted held until release(): an attempt that uploaded and verified, paused before it completes the record. */
function heldStore() {
  const base = world.config.store;
  let release!: () => void;
  let arrived!: () => void;
  const released = new Promise<void>((resolve) => { release = resolve; });
  const atGate = new Promise<void>((resolve) => { arrived = resolve; });
  const store: typeof base = {
    ...base,
    markCompleted: async (...args: Parameters<typeof base.markCompleted>) => {
      arrived();
      await released;
      return base.markCompleted(...args);
    },
  };
  return { store, atGate, release };
}

async function objectExists(key: string): Promise<boolean> {
  return world.s3.send(new HeadObjectCommand({ Bucket: world.bucket, Key: key })).then(() => true, () => false);
}

test('SSH dropped mid-backup: failed record, no object, no multipart parts left', async () => {
  const backupId = randomUUID();
  let dropped = false;
  // Parts reach storage slowly, so the stream is still running when the cut (which first reads /proc) lands.
  const s3 = testS3();
  s3.middlewareStack.add((next, context) => async (args) => {
    if (context.commandName === 'UploadPartCommand') await new Promise((resolve) => setTimeout(resolve, 500));
    return next(args);
  }, { step: 'initialize', name: 'slowParts' });
  const failure = await world.service({ s3 }).backup({
    userId: world.userId, ssh: world.sshd.target, backupId, progressIntervalMs: 0,
    onProgress: (p) => {
      if (!dropped && p.phase === 'streaming' && p.bytesDone > 8 * 1024 * 1024) {
        dropped = true;
        // Kill the server side of the connection (sshd's session processes), as a network cut would.
        void descendants(world.sshd.process.pid).then((pids) => pids.forEach((pid) => { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }));
      }
    },
  }).then(() => undefined, (err: unknown) => err);
  expect(dropped).toBe(true);
  expect(failure).toMatchObject({ type: ErrorType.Transient });
  expect((await rowOf(backupId))?.status).toBe('failed');
  await expectNothingLeft(backupId);
});

test('storage error mid-upload: failed record, upload aborted, no parts left', async () => {
  const s3 = testS3();
  let parts = 0;
  // MinIO is real; only the second UploadPart is made to fail, as a storage outage would.
  s3.middlewareStack.add((next) => async (args) => {
    const input = args.input as { PartNumber?: number };
    if (input.PartNumber !== undefined && ++parts === 2) throw Object.assign(new Error('injected: storage unavailable'), { $fault: 'server' });
    return next(args);
  }, { step: 'initialize', name: 'injectStorageFault' });
  const backupId = randomUUID();
  const failure = await world.service({ s3 }).backup({ userId: world.userId, ssh: world.sshd.target, backupId }).then(() => undefined, (e: unknown) => e);
  expect(parts).toBeGreaterThanOrEqual(2);
  expect(failure).toMatchObject({ type: ErrorType.Transient });
  expect(String((failure as Error).message)).toContain('storage unavailable');
  expect((await rowOf(backupId))?.status).toBe('failed');
  await expectNothingLeft(backupId);
});

test('worker killed mid-backup: no completed record; the retry completes with its own object, and the prune sweeps the dead attempt\'s upload', async () => {
  const backupId = randomUUID();
  const serviceUrl = pathToFileURL(path.resolve('activities/backups/index.ts')).href;
  const dbUrl = pathToFileURL(path.resolve('db/client.ts')).href;
  // A separate worker process running the same service, killed with SIGKILL once a part is in storage.
  const script = `
    const { createBackupService, createKyselyBackupStore } = await import(${JSON.stringify(serviceUrl)});
    const { createDb } = await import(${JSON.stringify(dbUrl)});
    const { S3Client } = await import('@aws-sdk/client-s3');
    const { pino } = await import('pino');
    const env = JSON.parse(process.env.BACKUP_CHILD);
    const s3 = new S3Client({ endpoint: process.env.AWS_ENDPOINT_URL_S3, region: 'us-east-1', forcePathStyle: true,
      credentials: { accessKeyId: process.env.AWS_ACCESS_KEY_ID, secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY } });
    // Part 1 lands in storage; part 2 hangs, and the worker is killed while it waits.
    let part1;
    s3.middlewareStack.add((next) => async (args) => {
      if (args.input.PartNumber === 1) return (part1 = next(args));
      if (args.input.PartNumber === 2) { await part1; process.stdout.write('parts-sent\\n'); return new Promise(() => {}); }
      return next(args);
    }, { step: 'initialize', name: 'hangSecondPart' });
    const service = createBackupService({ ...env.config, s3, store: createKyselyBackupStore(createDb(process.env.DATABASE_URL, { schema: env.schema })),
      log: pino({ level: 'silent' }), masterKeys: { 'test-k1': Buffer.from(env.key, 'base64') } });
    await service.backup({ userId: env.userId, backupId: env.backupId, progressIntervalMs: 0,
      ssh: { ...env.ssh, privateKey: Buffer.from(env.ssh.privateKey, 'base64') } });
  `;
  const { s3: _s3, store: _store, log: _log, masterKeys: _keys, ...config } = world.config;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    cwd: process.cwd(),
    env: { ...process.env, BACKUP_CHILD: JSON.stringify({
      config, schema: world.database.schema, userId: world.userId, backupId, key: (world.config.masterKeys['test-k1'] as Buffer).toString('base64'),
      ssh: { ...world.sshd.target, privateKey: Buffer.from(world.sshd.target.privateKey).toString('base64') },
    }) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => { if (d.toString().includes('parts-sent')) resolve(); });
    void exited.then(() => reject(new Error(`the worker exited before it sent parts: ${stderr}`)));
  });
  // What the worker started beside it (the agent holding the customer's key, its watcher, the ssh
  // carrying the stream) must not outlive it.
  const helpers = await descendants(child.pid!);
  expect(helpers.length).toBeGreaterThan(0);
  child.kill('SIGKILL');
  await exited;
  for (let waited = 0; (await Promise.all(helpers.map(alive))).some(Boolean); waited += 100) {
    if (waited > 20_000) throw new Error(`still running after the worker died: ${helpers.join(' ')}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }

  // What a crash leaves: a pending record, and an unfinished attempt with an open multipart upload holding parts.
  const row = await rowOf(backupId);
  expect(row?.status).toBe('pending');
  const [dead] = await attemptsOf(backupId);
  expect(dead?.finishedAt).toBeNull();
  expect(await openUploads(world.s3, world.bucket, dead!.objectKey)).toHaveLength(1);

  // Temporal retries the activity with the same backup id: the retry completes with an object of its
  // own, and leaves the dead attempt's upload alone (it cannot tell a dead attempt from a slow one).
  const done = await world.service().backup({ userId: world.userId, ssh: world.sshd.target, backupId });
  expect(done.backupId).toBe(backupId);
  expect(done.objectKey).not.toBe(dead!.objectKey);
  expect((await rowOf(backupId))?.status).toBe('completed');
  expect(await openUploads(world.s3, world.bucket, dead!.objectKey)).toHaveLength(1);

  // Once no attempt can still be alive, the prune sweeps what the dead one left; the backup stays.
  expect((await world.service().prune({ now: new Date(Date.now() + 3600_000) })).swept).toEqual([]);
  const pruned = await world.service().prune({ now: new Date(Date.now() + 25 * 3600_000) });
  expect(pruned.swept).toEqual([dead!.id]);
  expect(await openUploads(world.s3, world.bucket, dead!.objectKey)).toEqual([]);
  expect((await rowOf(backupId))?.status).toBe('completed');
  expect(await objectExists(done.objectKey)).toBe(true);
  expect((await attemptsOf(backupId)).map((a) => a.outcome)).toEqual(['swept', 'completed']);
});

test('an attempt that fails early while an older attempt still runs removes nothing of the older one', async () => {
  const backupId = randomUUID();
  const held = heldStore();
  const older = world.service({ store: held.store }).backup({ userId: world.userId, ssh: world.sshd.target, backupId });
  older.catch(() => {});
  // The older attempt uploaded and verified its object and is about to complete the record...
  await held.atGate;
  // ...when Temporal's retry of the same step starts and fails early (its pre-backup step fails).
  await expect(world.service({ preBackupCommand: 'exit 7' }).backup({ userId: world.userId, ssh: world.sshd.target, backupId }))
    .rejects.toMatchObject({ type: ErrorType.Transient, message: expect.stringContaining('pre-backup step') });
  held.release();
  const done = await older;

  // The completed backup stands on an object that exists, and it restores.
  const row = await rowOf(backupId);
  expect(row).toMatchObject({ status: 'completed', objectKey: done.objectKey, sha256: done.sha256 });
  expect(await objectExists(done.objectKey)).toBe(true);
  const root = path.join(world.dir, 'restore-overlap-early');
  await world.service().restore({ backupId, ssh: world.sshd.target, root });
  expect(await sh('sha256sum < "$1/data.bin"', path.join(root, world.config.paths[0]!))).toBe(await sh('sha256sum < "$1/src/data.bin"', world.dir));
});

test('an attempt overtaken by a newer one neither completes the backup nor removes the newer one\'s object', async () => {
  const backupId = randomUUID();
  const held = heldStore();
  const older = world.service({ store: held.store }).backup({ userId: world.userId, ssh: world.sshd.target, backupId }).then(() => undefined, (e: unknown) => e);
  await held.atGate;
  // The retry runs to the end while the older attempt is paused before completing.
  const newer = await world.service().backup({ userId: world.userId, ssh: world.sshd.target, backupId });
  held.release();
  expect(await older).toMatchObject({ type: ErrorType.Transient, message: expect.stringContaining('taken over by a newer attempt') });

  const row = await rowOf(backupId);
  expect(row).toMatchObject({ status: 'completed', objectKey: newer.objectKey, sha256: newer.sha256 });
  // Only the newer attempt's object is left; the older one removed its own, and no upload is open.
  expect((await objectKeys(world.s3, world.bucket, world.keyPrefix)).filter((k) => k.includes(backupId))).toEqual([newer.objectKey]);
  const attempts = await attemptsOf(backupId);
  for (const attempt of attempts) expect(await openUploads(world.s3, world.bucket, attempt.objectKey)).toEqual([]);
  expect(attempts.map((a) => a.outcome)).toEqual(['superseded', 'completed']);
  const root = path.join(world.dir, 'restore-overlap-newer');
  await world.service().restore({ backupId, ssh: world.sshd.target, root });
  expect(await sh('sha256sum < "$1/data.bin"', path.join(root, world.config.paths[0]!))).toBe(await sh('sha256sum < "$1/src/data.bin"', world.dir));
});

test('restore refuses a corrupt, truncated or missing object and a wrong or unknown key; restoreLatest falls back', async () => {
  const service = world.service();
  const older = await service.backup({ userId: world.userId, ssh: world.sshd.target });
  const newer = await service.backup({ userId: world.userId, ssh: world.sshd.target });
  const restoreRoot = path.join(world.dir, 'restore-target');
  const restoredPath = path.join(restoreRoot, world.config.paths[0]!);
  const original = Buffer.from(await (await world.s3.send(new GetObjectCommand({ Bucket: world.bucket, Key: newer.objectKey }))).Body!.transformToByteArray());
  const put = (body: Buffer) => world.s3.send(new PutObjectCommand({ Bucket: world.bucket, Key: newer.objectKey, Body: body }));

  // Wrong key under the right id, then no key with that id at all: refused before the server is touched.
  await expect(world.service({ masterKeys: { 'test-k1': randomBytes(32) } }).restore({ backupId: newer.backupId, ssh: world.sshd.target, root: restoreRoot }))
    .rejects.toMatchObject({ type: ErrorType.KeyUnavailable, message: expect.stringContaining('does not open') });
  await expect(world.service({ masterKeys: { 'test-k2': randomBytes(32), 'test-k1': undefined as unknown as Buffer }, currentKeyId: 'test-k2' })
    .restore({ backupId: newer.backupId, ssh: world.sshd.target, root: restoreRoot }))
    .rejects.toMatchObject({ type: ErrorType.KeyUnavailable, message: expect.stringContaining('not configured') });
  expect(existsSync(restoreRoot)).toBe(false);

  // One flipped byte in the middle: the chunk fails authentication (or the SHA-256 check) mid-stream.
  const corrupt = Buffer.from(original);
  corrupt[Math.floor(corrupt.length / 2)]! ^= 0x01;
  await put(corrupt);
  await expect(service.restore({ backupId: newer.backupId, ssh: world.sshd.target, root: restoreRoot }))
    .rejects.toMatchObject({ type: ErrorType.BackupCorrupt });
  expect(existsSync(restoredPath)).toBe(false);
  expect(await sh('ls -A "$1"', restoreRoot)).toBe('');

  // Truncated by one byte: the size no longer matches the record.
  await put(original.subarray(0, original.length - 1));
  await expect(service.restore({ backupId: newer.backupId, ssh: world.sshd.target, root: restoreRoot }))
    .rejects.toMatchObject({ type: ErrorType.BackupCorrupt, message: expect.stringContaining('recorded') });

  // The fallback: the newest backup is bad, so the previous verified one is restored, exactly.
  const fallback = await service.restoreLatest({ userId: world.userId, ssh: world.sshd.target, root: restoreRoot });
  expect(fallback.backupId).not.toBe(newer.backupId);
  expect(fallback.skipped[0]).toMatchObject({ backupId: newer.backupId, type: ErrorType.BackupCorrupt });
  expect(await sh('sha256sum < "$1/data.bin"', restoredPath)).toBe(await sh('sha256sum < "$1/src/data.bin"', world.dir));

  // Missing object.
  await world.s3.send(new DeleteObjectCommand({ Bucket: world.bucket, Key: newer.objectKey }));
  await expect(service.restore({ backupId: newer.backupId, ssh: world.sshd.target, root: restoreRoot }))
    .rejects.toMatchObject({ type: ErrorType.BackupCorrupt, message: expect.stringContaining('missing') });
  expect(older.backupId).toBeTruthy();
  await expect(world.s3.send(new HeadObjectCommand({ Bucket: world.bucket, Key: older.objectKey }))).resolves.toBeTruthy();
});

/**
 * Backups that can be trusted: server → `tar` over an SSH exec channel → zstd → chunked AES-256-GCM
 * → SHA-256 → S3 multipart upload, marked completed only after the stored object's size and SHA-256
 * were re-read from storage and matched. Restore runs the same pipeline backwards into a staging
 * directory on the server, moves it into place, runs the post-restore step and checks the tree
 * against the manifest. Incrementals use GNU tar's --listed-incremental (docs/decisions/).
 */
import { createHash, randomUUID } from 'node:crypto';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import zlib from 'node:zlib';
import {
  AbortMultipartUploadCommand, DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, ListMultipartUploadsCommand, type S3Client,
} from '@aws-sdk/client-s3';
import type { Client } from 'ssh2';
import type { BackupManifest } from '../../db/database.ts';
import { ErrorType } from '../../lib/errors.ts';
import type { Logger } from '../../lib/log.ts';
import { createDecryptStream, createEncryptStream, DEFAULT_CHUNK_SIZE, parseHeader, unwrapDataKey, unwrapRewrapped, type MasterKeys } from './crypto.ts';
import { asTyped, backupFailure, failureType } from './errors.ts';
import { collectStderr, connectSsh, execChannel, exitOf, mustRun, runRemote, shq, TAR_PROGRESS_OPTIONS, watchTarStderr, type SshConnect, type SshTarget } from './ssh.ts';
import type { BackupRecord, BackupStore } from './store.ts';
import { checkRelativePath, listRemoteTree, serverContentHash, treeDifferences, type ContentHash, type TreeEntry } from './tree.ts';
import { createPartUpload } from './upload.ts';

export interface BackupServiceConfig {
  s3: S3Client;
  bucket: string;
  /** Object keys are `<keyPrefix><userId>/<backupId>.tar.zst.enc`. Default "backups/". */
  keyPrefix?: string;
  /** Master keys by id; `currentKeyId` encrypts new backups, any listed id can restore. */
  masterKeys: MasterKeys;
  currentKeyId: string;
  store: BackupStore;
  log: Logger;
  /** Defaults to connectSsh (pinned host key). */
  connect?: SshConnect;
  /** Paths to back up, relative to `root` (production: the `openclaw backup create` staging dir). */
  paths: readonly string[];
  /** Directory the paths are relative to, on the server. Default "/". */
  root?: string;
  /** Shell command run on the server before tar (production: `openclaw backup create --verify ...`). */
  preBackupCommand?: string;
  /** Shell command run on the server after a restore moved the files into place. */
  postRestoreCommand?: string;
  /** Server directory for tar's incremental snapshot file. Default "/var/lib/berth-backup". */
  stateDir?: string;
  /** zstd level; 3 is zstd's default and the speed/ratio sweet spot. */
  zstdLevel?: number;
  /**
   * Where zstd runs. 'server' (default): `tar -I zstd` on the server, so the worker only encrypts,
   * hashes and uploads, and fewer bytes cross SSH; falls back to the worker when the server has no
   * zstd. 'worker': Node's zlib zstd in this process. The stored format is the same either way.
   */
  compressOn?: 'server' | 'worker';
  /** zstd threads on the server (`-T`); 1 leaves the customer's other cores alone, 0 means all. */
  zstdThreads?: number;
  /** Plaintext bytes per encrypted chunk. */
  chunkSize?: number;
  /**
   * Multipart part size (default 8 MiB). Explicit, because a stream of unknown length can only grow to
   * partSize × 10,000; a backup whose paths are larger than partSize × 9,000 (du, before compression)
   * uses proportionally larger parts, so memory stays flat up to ~70 GiB and grows only beyond.
   */
  partSize?: number;
  /** Parts uploaded at once. The uploader holds partSize × (queueSize + 1) bytes. Default 2. */
  queueSize?: number;
  /** Incrementals after a full before the next full is forced. Default 13. */
  maxChainLength?: number;
}

export interface BackupProgress {
  phase: 'preparing' | 'streaming' | 'verifying' | 'restoring' | 'checking';
  /** Bytes of tar stream read from (backup) or written to (restore) the server so far. */
  bytesDone: number;
  /** Estimated total for this phase (du of the paths for backups; stored size for restores). */
  bytesEstimate: number | null;
  /** Encrypted bytes sent to or read from storage so far. */
  bytesStored: number;
}

export interface BackupRequest {
  userId: string;
  serverId?: string | null;
  ssh: SshTarget;
  /** Idempotency: derive from workflow id + step; a retry with the same id restarts cleanly. */
  backupId?: string;
  /** Build on the latest completed backup if the server's snapshot state still matches it. */
  incremental?: boolean;
  expiresAt?: Date | null;
  /** Heartbeat hook: called at most every `progressIntervalMs` (default 1 s) and at phase changes. */
  onProgress?: (progress: BackupProgress) => void;
  progressIntervalMs?: number;
}

export interface BackupManifestV1 {
  format: 1;
  root: string;
  paths: string[];
  kind: 'full' | 'incremental';
  parentId: string | null;
  fileCount: number;
  dirCount: number;
  symlinkCount: number;
  /** Apparent bytes of regular files in the tree after this backup. */
  totalBytes: number;
  treeDigest: string;
  /** How `entries` hash file contents; absent in older manifests, which used SHA-256. */
  contentHash?: ContentHash;
  entries: TreeEntry[];
  /** Bytes of the tar stream (this backup's archive; for incrementals, only what changed). */
  archiveBytes: number;
  storedBytes: number;
  encryption: { algorithm: 'aes-256-gcm-chunked-v1'; keyId: string; chunkSize: number };
  /** `where`: 'server' (`tar -I zstd` on the server) or 'worker' (Node's zlib); absent in older manifests. */
  compression: { algorithm: 'zstd'; level: number; where?: 'server' | 'worker' };
  tools: { tar: string; zstd: string; node: string };
  preBackupCommand: string | null;
}

export interface BackupResult {
  backupId: string;
  kind: 'full' | 'incremental';
  parentId: string | null;
  objectKey: string;
  sizeBytes: number;
  sha256: string;
  archiveBytes: number;
  manifest: BackupManifestV1;
}

export interface RestoreRequest {
  backupId: string;
  ssh: SshTarget;
  /** Where on the server the paths are restored (relative paths as backed up). Default: the backup's root. */
  root?: string;
  onProgress?: (progress: BackupProgress) => void;
  progressIntervalMs?: number;
}

export interface RestoreResult {
  backupId: string;
  chain: string[];
  fileCount: number;
  totalBytes: number;
  treeDigest: string;
}

export interface PruneRequest {
  now?: Date;
  /** Users whose retention is over (purged): even their last verified backup goes. */
  retentionOverFor?: readonly string[];
}

export interface BackupService {
  backup(req: BackupRequest): Promise<BackupResult>;
  restore(req: RestoreRequest): Promise<RestoreResult>;
  /** Restores the newest verified backup, falling back to older ones if one is corrupt or its key is gone. */
  restoreLatest(req: Omit<RestoreRequest, 'backupId'> & { userId: string }): Promise<RestoreResult & { skipped: { backupId: string; type: string; message: string }[] }>;
  prune(req?: PruneRequest): Promise<{ deleted: string[] }>;
  /** Aborts multipart uploads left under a user's prefix (a crashed worker's); returns how many. */
  abortOrphanedUploads(userId: string): Promise<number>;
}

const RESTORE_ERRORS: readonly string[] = [ErrorType.BackupCorrupt, ErrorType.KeyUnavailable];

/**
 * The server's size estimate sizes the upload's part buffers (partSize × (queueSize + 1) in memory),
 * so neither is taken beyond these: 64 MiB parts hold objects up to 625 GiB in 10,000 parts.
 */
const MAX_PART_BYTES = 64 * 1024 * 1024;
const MAX_ESTIMATE_BYTES = 16 * 1024 ** 4;

/**
 * SigV4 signs a Buffer body by hashing it with SHA-256 — for every part we upload, on our main
 * thread — and storage hashes it again to check. Without SHA extensions that is ~230 MB/s per side,
 * as slow as zstd. Our backup parts go `UNSIGNED-PAYLOAD` instead (still signed headers; the SDK's
 * CRC32 checksum of each part still travels and storage checks it; production is TLS), because the
 * object as a whole is re-read and its SHA-256 matched before a backup counts. Only UploadPart
 * requests for this service's bucket and key prefix are touched; adding it again replaces it.
 */
function sendPartsUnsigned(s3: S3Client, bucket: string, keyPrefix: string): void {
  s3.middlewareStack.add((next, context) => async (args) => {
    const input = args.input as { Bucket?: string; Key?: string };
    const request = args.request as { headers?: Record<string, string> };
    if (context.commandName === 'UploadPartCommand' && input.Bucket === bucket && input.Key?.startsWith(keyPrefix) && request.headers) {
      request.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
    }
    return next(args);
  }, { step: 'build', name: `berthUnsignedBackupParts:${bucket}:${keyPrefix}`, override: true });
}

/** Builds the backup service from its dependencies (clients are made by the worker or the tests). */
export function createBackupService(config: BackupServiceConfig): BackupService {
  const { s3, bucket, store, log, masterKeys, currentKeyId } = config;
  const keyPrefix = config.keyPrefix ?? 'backups/';
  const connect = config.connect ?? connectSsh;
  const root = config.root ?? '/';
  const paths = config.paths.map(checkRelativePath);
  const stateDir = config.stateDir ?? '/var/lib/berth-backup';
  const zstdLevel = config.zstdLevel ?? 3;
  const chunkSize = config.chunkSize ?? DEFAULT_CHUNK_SIZE;
  const partSize = config.partSize ?? 8 * 1024 * 1024;
  const queueSize = config.queueSize ?? 2;
  const compressOn = config.compressOn ?? 'server';
  const zstdThreads = config.zstdThreads ?? 1;
  const maxChainLength = config.maxChainLength ?? 13;
  if (paths.length === 0) throw backupFailure(ErrorType.Misconfigured, 'no backup paths configured');
  if (!masterKeys[currentKeyId]) throw backupFailure(ErrorType.Misconfigured, `current master key ${currentKeyId} is not configured`);

  const userPrefix = (userId: string) => `${keyPrefix}${userId}/`;
  sendPartsUnsigned(s3, bucket, keyPrefix);
  const snar = `${stateDir}/tar.snar`;
  const snarParent = `${stateDir}/tar.snar.parent`;

  async function abortUploads(prefix: string, exactKey?: string): Promise<number> {
    let aborted = 0;
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      const page = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }));
      for (const u of page.Uploads ?? []) {
        if (!u.Key || !u.UploadId || (exactKey && u.Key !== exactKey)) continue;
        await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key, UploadId: u.UploadId }));
        aborted++;
      }
      if (!page.IsTruncated) return aborted;
      keyMarker = page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
    }
  }

  async function headSize(key: string): Promise<number | undefined> {
    try {
      const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      return head.ContentLength;
    } catch (err) {
      const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (status === 404) return undefined;
      throw err;
    }
  }

  async function getStream(key: string, range?: string): Promise<Readable> {
    try {
      const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: range }));
      return res.Body as Readable;
    } catch (err) {
      const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (status === 404) throw backupFailure(ErrorType.BackupCorrupt, `backup object ${key} is missing from storage`, err);
      throw err;
    }
  }

  /** Size and SHA-256 of the stored object, read back from storage. */
  async function rereadObject(key: string, onBytes?: (n: number) => void): Promise<{ size: number; sha256: string }> {
    const hash = createHash('sha256');
    let size = 0;
    for await (const chunk of await getStream(key)) {
      hash.update(chunk as Buffer);
      size += (chunk as Buffer).length;
      onBytes?.(size);
    }
    return { size, sha256: hash.digest('hex') };
  }

  function progressReporter(onProgress: ((p: BackupProgress) => void) | undefined, intervalMs = 1000) {
    let last = 0;
    return (p: BackupProgress, force = false) => {
      if (!onProgress) return;
      const now = Date.now();
      if (!force && now - last < intervalMs) return;
      last = now;
      onProgress(p);
    };
  }

  async function withSsh<T>(target: SshTarget, fn: (client: Client) => Promise<T>): Promise<T> {
    const client = await connect(target);
    try {
      return await fn(client);
    } finally {
      client.end();
    }
  }

  /** Chooses full or incremental: incremental only if the server's snapshot state is the latest completed backup's. */
  async function chooseParent(client: Client, userId: string, wanted: boolean): Promise<BackupRecord | null> {
    if (!wanted) return null;
    const latest = (await store.listForUser(userId)).find((r) => r.status === 'completed' && r.verifiedAt);
    if (!latest) return null;
    let depth = 0;
    for (let r: BackupRecord | undefined = latest; r?.kind === 'incremental'; r = r.parentId ? await store.get(r.parentId) : undefined) depth++;
    if (depth >= maxChainLength) return null;
    const onServer = await runRemote(client, `cat -- ${shq(snarParent)} 2>/dev/null && test -s ${shq(snar)}`);
    return onServer.code === 0 && onServer.stdout.toString().trim() === latest.id ? latest : null;
  }

  const service: BackupService = {
    async backup(req) {
      const backupId = req.backupId ?? randomUUID();
      const existing = await store.get(backupId);
      if (existing?.status === 'completed') {
        const manifest = existing.manifest as unknown as BackupManifestV1;
        return { backupId, kind: existing.kind, parentId: existing.parentId, objectKey: existing.objectKey, sizeBytes: existing.sizeBytes!,
          sha256: existing.sha256!, archiveBytes: manifest.archiveBytes, manifest };
      }
      const objectKey = `${userPrefix(req.userId)}${backupId}.tar.zst.enc`;
      const report = progressReporter(req.onProgress, req.progressIntervalMs);
      const progress: BackupProgress = { phase: 'preparing', bytesDone: 0, bytesEstimate: null, bytesStored: 0 };
      report(progress, true);
      const snarTmp = `${stateDir}/tar.snar.${backupId}`;
      let recorded = false;
      let client: Client | undefined;
      try {
        // A crashed attempt (this backup's or an earlier one's) may have left parts behind.
        // MinIO lists uploads only for an exact key, S3 by prefix: sweep both.
        const orphans = await abortUploads(objectKey, objectKey) + await abortUploads(userPrefix(req.userId));
        if (orphans > 0) log.warn({ userId: req.userId, orphans }, 'aborted multipart uploads left by an earlier attempt');
        client = await connect(req.ssh);
        if (config.preBackupCommand) await mustRun(client, config.preBackupCommand, 'pre-backup step');
        const parent = await chooseParent(client, req.userId, req.incremental ?? false);
        const kind = parent ? 'incremental' : 'full';
        const starts = paths.map((p) => shq(`./${p}`)).join(' ');
        // tar's version, zstd's (or "none"), the apparent size of the paths.
        const facts = (await mustRun(client, `tar --version | head -n 1 && { zstd -V 2>/dev/null | head -n 1 | grep . || echo none; } && cd ${shq(root)} && du -s -c -b -- ${starts} | tail -n 1`,
          'inspecting the paths', ErrorType.Misconfigured)).toString().split('\n');
        const tarVersion = facts[0]?.trim() ?? 'unknown';
        const serverZstd = facts[1]?.trim() && facts[1].trim() !== 'none' ? facts[1].trim() : undefined;
        // The server's own word: a number only within reason, or none (it sizes the upload's parts).
        const estimate = Number(facts[2]?.split(/\s/)[0]);
        progress.bytesEstimate = Number.isSafeInteger(estimate) && estimate > 0 ? Math.min(estimate, MAX_ESTIMATE_BYTES) : null;
        const where = compressOn === 'server' && serverZstd ? 'server' : 'worker';
        if (compressOn === 'server' && !serverZstd) log.warn({ backupId }, 'the server has no zstd: compressing in the worker');

        await store.upsertPending({ id: backupId, userId: req.userId, serverId: req.serverId ?? null, kind, parentId: parent?.id ?? null,
          objectKey, encryptionKeyId: currentKeyId, expiresAt: req.expiresAt ?? null });
        recorded = true;
        log.info({ backupId, userId: req.userId, kind, parentId: parent?.id ?? null, compressOn: where }, 'backup started');

        // tar works on a copy of the snapshot file, adopted only once this backup completed.
        // With server-side compression tar runs zstd itself (-I), so tar's exit status covers zstd's too.
        const prepareSnapshot = parent ? `cp -- ${shq(snar)} ${shq(snarTmp)}` : `rm -f -- ${shq(snarTmp)}`;
        const compressor = where === 'server' ? ` --use-compress-program=${shq(`zstd -${zstdLevel} -q -T${zstdThreads}`)}` : '';
        const tarCommand = `mkdir -p -- ${shq(stateDir)} && ${prepareSnapshot} && cd ${shq(root)} && `
          + `tar --create --file=- --format=posix --sparse --numeric-owner --listed-incremental=${shq(snarTmp)} ${TAR_PROGRESS_OPTIONS}${compressor} -- ${starts}`;
        const channel = await execChannel(client, tarCommand);
        // Progress is tar's own count of archive bytes (before compression), reported every ~10 MiB.
        const tarErr = watchTarStderr(channel, (n) => {
          progress.bytesDone = n;
          report(progress);
        });
        const exited = exitOf(channel, 'tar', tarErr.text);
        exited.catch(() => {});
        channel.end();

        progress.phase = 'streaming';
        report(progress, true);
        const hash = createHash('sha256');
        let received = 0;
        // The archive ends only when tar said it succeeded: a dropped connection looks like EOF otherwise.
        const gate = new Transform({
          transform(data: Buffer, _enc, done: TransformCallback) {
            received += data.length;
            done(null, data);
          },
          flush(done: TransformCallback) {
            exited.then((code) => done(code === 0 ? null : backupFailure(ErrorType.Transient, `tar exited with ${code}${tarErr.text() ? `: ${tarErr.text()}` : ''}`)), done);
          },
        });
        // Sees whole sealed records (a few MiB each), so hashing costs one call per record.
        const meter = new Transform({
          readableHighWaterMark: chunkSize,
          transform(data: Buffer, _enc, done: TransformCallback) {
            hash.update(data);
            progress.bytesStored += data.length;
            done(null, data);
          },
        });
        // Fixed part buffers, reused: memory is partSize × (queueSize + 1) plus a chunk or two in the stages.
        const MiB = 1024 * 1024;
        const parts = Math.min(MAX_PART_BYTES, Math.max(partSize, Math.ceil((progress.bytesEstimate ?? 0) / 9000 / MiB) * MiB));
        const upload = createPartUpload({ s3, bucket, key: objectKey, partSize: parts, queueSize, contentType: 'application/octet-stream' });
        const stages: Transform[] = [gate];
        if (where === 'worker') stages.push(zlib.createZstdCompress({ params: { [zlib.constants.ZSTD_c_compressionLevel]: zstdLevel } }));
        const streams = [channel, ...stages, createEncryptStream({ keyId: currentKeyId, masterKeys, chunkSize }), meter, upload.stream];
        const piped = pipeline(streams);
        piped.catch(() => {});
        // pipeline() settles only once every stream closed, and an SSH channel closes only when the
        // server's tar has exited — which it will not while its output is blocked. Fail on the first error.
        const firstError = new Promise<never>((_resolve, reject) => {
          for (const stream of streams) stream.once('error', reject);
        });
        firstError.catch(() => {});
        try {
          await Promise.race([piped, firstError]);
        } catch (err) {
          channel.destroy();
          // Let an in-flight CreateMultipartUpload/UploadPart settle (and the upload be aborted) before sweeping, or it could outlive the sweep.
          await Promise.race([upload.cleanedUp(), sleep(30_000)]);
          throw err;
        }
        const sha256 = hash.digest('hex');
        const sizeBytes = progress.bytesStored;
        const archiveBytes = tarErr.archiveBytes() ?? (where === 'worker' ? received : 0);
        progress.bytesDone = archiveBytes;

        // Verified means read back from storage, not what we believe we sent. The manifest's listing
        // (find + sha256sum on the server) runs meanwhile: it uses the server's CPU, the re-read ours.
        progress.phase = 'verifying';
        report(progress, true);
        const contentHash = await serverContentHash(client);
        const [reread, listed] = await Promise.allSettled([rereadObject(objectKey), listRemoteTree(client, root, paths, contentHash)]);
        if (reread.status === 'rejected') throw reread.reason;
        if (listed.status === 'rejected') throw listed.reason;
        const stored = reread.value;
        if (stored.size !== sizeBytes || stored.sha256 !== sha256) {
          throw backupFailure(ErrorType.BackupCorrupt, `stored object ${objectKey} does not match what was sent (size ${stored.size}/${sizeBytes}, sha256 ${stored.sha256}/${sha256})`);
        }
        const tree = listed.value;
        const manifest: BackupManifestV1 = {
          format: 1, root, paths, kind, parentId: parent?.id ?? null,
          fileCount: tree.fileCount, dirCount: tree.dirCount, symlinkCount: tree.symlinkCount, totalBytes: tree.totalBytes,
          treeDigest: tree.digest, contentHash, entries: tree.entries, archiveBytes, storedBytes: sizeBytes,
          encryption: { algorithm: 'aes-256-gcm-chunked-v1', keyId: currentKeyId, chunkSize },
          compression: { algorithm: 'zstd', level: zstdLevel, where },
          tools: { tar: tarVersion, zstd: where === 'server' ? serverZstd! : `zlib ${process.versions.zstd ?? 'unknown'}`, node: process.version },
          preBackupCommand: config.preBackupCommand ?? null,
        };
        await store.markCompleted(backupId, { sizeBytes, sha256, manifest: manifest as unknown as BackupManifest, verifiedAt: new Date() });
        // Only now does the server's snapshot state move on; if this fails the next backup is a full one.
        await mustRun(client, `mv -f -- ${shq(snarTmp)} ${shq(snar)} && printf %s ${shq(backupId)} > ${shq(snarParent)}`, 'adopting the snapshot file')
          .catch((err: unknown) => log.warn({ backupId, err: (err as Error).message }, 'could not adopt the tar snapshot file; the next backup will be full'));
        log.info({ backupId, kind, sizeBytes, archiveBytes }, 'backup completed and verified');
        return { backupId, kind, parentId: parent?.id ?? null, objectKey, sizeBytes, sha256, archiveBytes, manifest };
      } catch (err) {
        const typed = asTyped(err, 'backup failed');
        log.warn({ backupId, userId: req.userId, type: typed.type, err: typed.message }, 'backup failed');
        if (recorded) await store.setStatus(backupId, 'failed').catch((e: unknown) => log.error({ backupId, err: (e as Error).message }, 'could not mark backup failed'));
        await abortUploads(objectKey, objectKey).catch(() => {});
        await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: objectKey })).catch(() => {});
        if (client) await runRemote(client, `rm -f -- ${shq(snarTmp)}`).catch(() => {});
        throw typed;
      } finally {
        client?.end();
      }
    },

    async restore(req) {
      const target = await store.get(req.backupId);
      if (!target || target.status !== 'completed' || !target.verifiedAt) {
        throw backupFailure(ErrorType.NotFound, `backup ${req.backupId} is not a completed, verified backup`);
      }
      // The chain, oldest (the full backup) first; every link must be completed and verified.
      const chain: BackupRecord[] = [target];
      while (chain[0]!.parentId) {
        const parent = await store.get(chain[0]!.parentId);
        if (!parent || parent.status !== 'completed' || !parent.verifiedAt) {
          throw backupFailure(ErrorType.BackupCorrupt, `backup ${req.backupId} needs ${chain[0]!.parentId}, which is not a verified backup`);
        }
        chain.unshift(parent);
      }
      const manifest = target.manifest as unknown as BackupManifestV1;
      const restoreRoot = req.root ?? manifest.root;
      // Refuse before touching the server: every object present at its recorded size, every key opens.
      for (const link of chain) {
        const size = await headSize(link.objectKey);
        if (size === undefined) throw backupFailure(ErrorType.BackupCorrupt, `backup object ${link.objectKey} is missing from storage`);
        if (size !== link.sizeBytes) throw backupFailure(ErrorType.BackupCorrupt, `backup object ${link.objectKey} is ${size} bytes, recorded ${link.sizeBytes}`);
        const head: Buffer[] = [];
        for await (const c of await getStream(link.objectKey, 'bytes=0-16383')) head.push(c as Buffer);
        const parsed = parseHeader(Buffer.concat(head));
        if (!parsed) throw backupFailure(ErrorType.BackupCorrupt, `backup object ${link.objectKey} has a truncated header`);
        // After a master key rotation the record holds the data key re-wrapped under the newer key.
        const keyId = link.dataKey ? unwrapRewrapped(link.dataKey, masterKeys, link.id).keyId : parsed.json.keyId;
        if (keyId !== link.encryptionKeyId) throw backupFailure(ErrorType.BackupCorrupt, `backup object ${link.objectKey} names key ${keyId}, recorded ${link.encryptionKeyId}`);
        if (!link.dataKey) unwrapDataKey(parsed.json, masterKeys);
      }

      const report = progressReporter(req.onProgress, req.progressIntervalMs);
      const progress: BackupProgress = { phase: 'restoring', bytesDone: 0, bytesEstimate: chain.reduce((n, l) => n + (l.sizeBytes ?? 0), 0), bytesStored: 0 };
      report(progress, true);
      const stage = `./.berth-restore-${target.id}`;
      return withSsh(req.ssh, async (client) => {
        try {
          const hasZstd = (await mustRun(client, `mkdir -p -- ${shq(restoreRoot)} && cd ${shq(restoreRoot)} && rm -rf -- ${shq(stage)} && mkdir -m 700 -- ${shq(stage)}`
            + ' && { command -v zstd >/dev/null && echo zstd || echo none; }', 'preparing the restore directory')).toString().trim() === 'zstd';
          // Decompress where the backup was compressed by default: on the server if it has zstd (tar -I runs `zstd -d`).
          const serverSide = compressOn === 'server' && hasZstd;
          for (const link of chain) {
            const channel = await execChannel(client, `cd ${shq(restoreRoot)} && tar --extract --file=- --listed-incremental=/dev/null --numeric-owner --same-owner --same-permissions`
              + `${serverSide ? ` --use-compress-program=${shq('zstd -q')}` : ''} -C ${shq(stage)}`);
            const stderr = collectStderr(channel);
            const exited = exitOf(channel, 'tar -x', stderr);
            exited.catch(() => {});
            channel.resume();
            const hash = createHash('sha256');
            let size = 0;
            // Verify while reading: the last block (holding the final chunk) goes on only if the whole object matched.
            let held: Buffer | undefined;
            const meter = new Transform({
              transform(data: Buffer, _enc, done: TransformCallback) {
                hash.update(data);
                size += data.length;
                progress.bytesStored += data.length;
                const previous = held;
                held = data;
                done(null, previous);
              },
              flush(done: TransformCallback) {
                const sha256 = hash.digest('hex');
                if (size !== link.sizeBytes || sha256 !== link.sha256) {
                  done(backupFailure(ErrorType.BackupCorrupt, `backup object ${link.objectKey} does not match its record (size ${size}/${link.sizeBytes}, sha256 ${sha256}/${link.sha256})`));
                } else done(null, held);
              },
            });
            const counter = new Transform({
              transform(data: Buffer, _enc, done: TransformCallback) {
                progress.bytesDone += data.length;
                report(progress);
                done(null, data);
              },
            });
            try {
              const dataKey = link.dataKey ? unwrapRewrapped(link.dataKey, masterKeys, link.id).dataKey : undefined;
              const stages: Transform[] = [meter, createDecryptStream({ masterKeys, dataKey })];
              if (!serverSide) stages.push(zlib.createZstdDecompress());
              await pipeline([await getStream(link.objectKey), ...stages, counter, channel]);
            } catch (err) {
              channel.destroy();
              throw err;
            }
            const code = await exited;
            if (code !== 0) throw backupFailure(ErrorType.Transient, `tar -x exited with ${code}${stderr() ? `: ${stderr()}` : ''}`);
          }
          const swap = manifest.paths.map((p) => {
            const parentDir = p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '.';
            return `rm -rf -- ${shq(`./${p}`)} && mkdir -p -- ${shq(`./${parentDir}`)} && mv -- ${shq(`${stage}/${p}`)} ${shq(`./${p}`)}`;
          });
          await mustRun(client, `cd ${shq(restoreRoot)} && ${swap.join(' && ')} && rm -rf -- ${shq(stage)}`, 'moving the restored files into place');
        } catch (err) {
          await runRemote(client, `cd ${shq(restoreRoot)} && rm -rf -- ${shq(stage)}`).catch(() => {});
          throw asTyped(err, 'restore failed');
        }
        if (config.postRestoreCommand) {
          await mustRun(client, `cd ${shq(restoreRoot)} && ${config.postRestoreCommand}`, 'post-restore step');
        }
        progress.phase = 'checking';
        report(progress, true);
        const tree = await listRemoteTree(client, restoreRoot, manifest.paths, manifest.contentHash ?? 'sha256');
        if (tree.digest !== manifest.treeDigest) {
          throw backupFailure(ErrorType.BackupCorrupt, `restored tree differs from the manifest of ${target.id}: ${treeDifferences(manifest.entries, tree.entries).join('; ')}`);
        }
        log.info({ backupId: target.id, chain: chain.map((l) => l.id), fileCount: tree.fileCount }, 'restore completed and verified');
        return { backupId: target.id, chain: chain.map((l) => l.id), fileCount: tree.fileCount, totalBytes: tree.totalBytes, treeDigest: tree.digest };
      });
    },

    async restoreLatest(req) {
      const candidates = (await store.listForUser(req.userId)).filter((r) => r.status === 'completed' && r.verifiedAt);
      if (candidates.length === 0) throw backupFailure(ErrorType.NotFound, `user ${req.userId} has no verified backup`);
      const skipped: { backupId: string; type: string; message: string }[] = [];
      for (const candidate of candidates) {
        try {
          return { ...(await service.restore({ ...req, backupId: candidate.id })), skipped };
        } catch (err) {
          const type = failureType(err);
          if (!type || !RESTORE_ERRORS.includes(type)) throw err;
          log.warn({ backupId: candidate.id, type, err: (err as Error).message }, 'backup cannot be restored; trying the previous one');
          skipped.push({ backupId: candidate.id, type, message: (err as Error).message });
        }
      }
      throw backupFailure(ErrorType.BackupCorrupt, `none of ${candidates.length} verified backups of user ${req.userId} could be restored: ${skipped.map((s) => `${s.backupId}: ${s.message}`).join('; ')}`);
    },

    async prune(req = {}) {
      const now = req.now ?? new Date();
      const over = new Set(req.retentionOverFor ?? []);
      const deleted: string[] = [];
      const users = new Set([...await store.usersToPrune(now), ...over]);
      for (const userId of users) {
        const rows = await store.listForUser(userId);
        const byId = new Map(rows.map((r) => [r.id, r]));
        const expired = (r: BackupRecord) => over.has(userId) || (r.expiresAt !== null && r.expiresAt <= now);
        const keep = new Set<string>();
        for (const r of rows) {
          if (r.status === 'pending' || (r.status === 'completed' && !expired(r))) keep.add(r.id);
        }
        // A customer still inside retention keeps their newest verified backup whatever its date.
        const newestVerified = rows.find((r) => r.status === 'completed' && r.verifiedAt);
        if (newestVerified && !over.has(userId)) keep.add(newestVerified.id);
        // Whatever a kept incremental builds on is kept too.
        for (const id of [...keep]) {
          for (let r = byId.get(id); r?.parentId; r = byId.get(r.parentId)) keep.add(r.parentId);
        }
        // Newest first, so incrementals go before the backups they build on.
        for (const r of rows) {
          if (keep.has(r.id)) continue;
          await abortUploads(r.objectKey, r.objectKey);
          await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: r.objectKey }));
          await store.setStatus(r.id, 'deleted');
          deleted.push(r.id);
        }
      }
      if (deleted.length > 0) log.info({ deleted: deleted.length }, 'pruned backups');
      return { deleted };
    },

    abortOrphanedUploads: (userId) => abortUploads(userPrefix(userId)),
  };
  return service;
}

/**
 * Backups that can be trusted: server `tar | zstd` → SSH (the OpenSSH client for the bulk stream,
 * ssh2 for control commands) → chunked AES-256-GCM → S3 multipart upload, marked completed only after
 * the stored object was read back from storage, its size matched and every chunk authenticated (its
 * SHA-256 recorded from that read). The manifest is taken from the archive itself (archive.ts), so a
 * tree that changes while it is archived still gives a backup whose restore checks out.
 * Restore runs the same pipeline backwards into a staging directory on the server, checks the staged
 * tree against the manifest, moves it into place and runs the post-restore step. Incrementals use
 * GNU tar's --listed-incremental; ownership, unreadable entries, attempts, verification: docs/decisions/.
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
import { errorMessage, ErrorType } from '../../lib/errors.ts';
import type { Logger } from '../../lib/log.ts';
import {
  ARCHIVE_LISTER_PY, canonicalDifferences, canonicalDigest, canonicalFromManifest, canonicalFromTree, ManifestMergeError, manifestEntries,
  parseArchiveListing, type CanonicalEntry, type ManifestEntry,
} from './archive.ts';
import { applyDeltas, DELTA_PY } from './delta.ts';
import { createAuthenticateStream, createDecryptStream, createEncryptStream, DEFAULT_CHUNK_SIZE, parseHeader, unwrapDataKey, unwrapRewrapped, type MasterKeys } from './crypto.ts';
import { asTyped, backupFailure, failureType } from './errors.ts';
import { openOpenSsh, openSshAvailable, pinnedHostKeyLine, type BulkTransport } from './openssh.ts';
import {
  collectStderr, connectSsh, EXIT_REPORT_MARK, guardedCommand, mustRun, runRemote, shq, ssh2Bulk, TAR_PROGRESS_OPTIONS, watchTarStderr, type SshConnect, type SshTarget,
} from './ssh.ts';
import type { BackupRecord, BackupStore } from './store.ts';
import { checkRelativePath, listRemoteTree, maxListingBytes, type ContentHash, type TreeEntry } from './tree.ts';
import { createPartUpload } from './upload.ts';

export interface BackupServiceConfig {
  s3: S3Client;
  bucket: string;
  /** Object keys are `<keyPrefix><userId>/<backupId>/<attemptId>.tar.zst.enc`. Default "backups/". */
  keyPrefix?: string;
  /** Master keys by id; `currentKeyId` encrypts new backups, any listed id can restore. */
  masterKeys: MasterKeys;
  currentKeyId: string;
  store: BackupStore;
  log: Logger;
  /** Defaults to connectSsh (pinned host key). Control commands go over this connection. */
  connect?: SshConnect;
  /**
   * What carries the bulk streams (a backup's archive, a restore's objects). 'openssh' (default): the
   * OpenSSH client, host key pinned and the private key held by an agent of the operation alone
   * (openssh.ts); used when the worker has `ssh` and the pin is an ed25519 key, else ssh2 with a
   * warning. 'ssh2': the control connection itself (~15× slower without ssh2's native binding).
   */
  transport?: 'openssh' | 'ssh2';
  /** Paths to back up, relative to `root` (production: the `openclaw backup create` staging dir). */
  paths: readonly string[];
  /** Directory the paths are relative to, on the server. Default "/". */
  root?: string;
  /** Shell command run on the server before tar (production: `openclaw backup create --verify ...`). */
  preBackupCommand?: string;
  /** Shell command run on the server after a restore moved the files into place. */
  postRestoreCommand?: string;
  /** Server directory for tar's incremental snapshots and each attempt's work files. Default "/var/lib/berth-backup". */
  stateDir?: string;
  /** zstd level; 3 is zstd's default and the speed/ratio sweet spot. */
  zstdLevel?: number;
  /**
   * Where zstd runs. 'server' (default): zstd on the server, so the worker only encrypts, hashes and
   * uploads, and fewer bytes cross SSH; falls back to the worker when the server has no zstd.
   * 'worker': Node's zlib zstd in this process. The stored format is the same either way.
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
  /**
   * Longer than any attempt can live (the activities' start-to-close timeout is 4 h): an attempt
   * unfinished for this long is dead, and what it left (object, upload, work files on the server,
   * a restore's staging directory) may be removed. Default 24 h.
   */
  staleAttemptMs?: number;
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
  /** Idempotency: derive from workflow id + step; a retry with the same id returns the completed backup. */
  backupId?: string;
  /** Build on the latest completed backup if the server's snapshot state still matches it. */
  incremental?: boolean;
  expiresAt?: Date | null;
  /** Heartbeat hook: called at most every `progressIntervalMs` (default 1 s) and at phase changes. */
  onProgress?: (progress: BackupProgress) => void;
  progressIntervalMs?: number;
  /**
   * Aborts this attempt (activity cancellation, a timed-out attempt): the SSH connection and with it
   * every command it ran on the server is ended, the upload aborted, what this attempt wrote removed,
   * and the signal's reason thrown.
   */
  signal?: AbortSignal;
}

/** An entry left out of a backup, and why: a restore by the server's account could not recreate it. */
export interface SkippedEntry {
  path: string;
  reason: 'unreadable' | 'device' | 'socket';
}

interface ManifestCommon {
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
  /** Bytes of the tar stream (this backup's archive; for incrementals, only what changed). */
  archiveBytes: number;
  storedBytes: number;
  encryption: { algorithm: 'aes-256-gcm-chunked-v1'; keyId: string; chunkSize: number };
  /** `where`: 'server' (zstd on the server) or 'worker' (Node's zlib); absent in older manifests. */
  compression: { algorithm: 'zstd'; level: number; where?: 'server' | 'worker' };
  tools: { tar: string; zstd: string; node: string; python?: string };
  preBackupCommand: string | null;
}

/** Manifests written before the manifest came from the archive: a listing of the tree after tar (find + hashes). */
export interface BackupManifestV1 extends ManifestCommon {
  format: 1;
  /** How `entries` hash file contents; absent in older manifests, which used SHA-256. */
  contentHash?: ContentHash;
  entries: TreeEntry[];
}

/**
 * The manifest as the archive holds it (archive.ts): entries, content hashes and owners as tar
 * recorded them. A restore reproduces everything but ownership: the server's account owns what it
 * restores (docs/decisions/), so owners are recorded for information and checked on restore as
 * "the restoring account".
 */
export interface BackupManifestV2 extends ManifestCommon {
  format: 2;
  contentHash: 'blake2b-256';
  entries: ManifestEntry[];
  /** What was left out, and why. */
  skipped: SkippedEntry[];
  /** tar's warnings when it exited 1 (files that changed or vanished while archived): kept as archived. */
  warnings: string[];
  /** Files this incremental holds as changed blocks (delta.ts): its restore patches the previous link's copies. Absent: none. */
  deltas?: number;
  /** Metadata a restore does not reproduce. */
  notKept: ['owner', 'xattrs', 'acls'];
}

export type AnyBackupManifest = BackupManifestV1 | BackupManifestV2;

export interface BackupResult {
  backupId: string;
  kind: 'full' | 'incremental';
  parentId: string | null;
  objectKey: string;
  sizeBytes: number;
  sha256: string;
  archiveBytes: number;
  manifest: AnyBackupManifest;
}

export interface RestoreRequest {
  backupId: string;
  ssh: SshTarget;
  /** Where on the server the paths are restored (relative paths as backed up). Default: the backup's root. */
  root?: string;
  onProgress?: (progress: BackupProgress) => void;
  progressIntervalMs?: number;
  /** Aborts the restore: the connection (and the commands it ran) is ended; nothing is moved into place after it. */
  signal?: AbortSignal;
}

export interface RestoreResult {
  backupId: string;
  chain: string[];
  fileCount: number;
  totalBytes: number;
  treeDigest: string;
  /** What the replaced tree left behind because the account could not remove it (foreign-owned entries). */
  leftovers: string[];
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
  /** Deletes expired backups, and removes what attempts that died (unfinished for `staleAttemptMs`) left in storage. */
  prune(req?: PruneRequest): Promise<{ deleted: string[]; swept: string[] }>;
}

const RESTORE_ERRORS: readonly string[] = [ErrorType.BackupCorrupt, ErrorType.KeyUnavailable];

/**
 * The server's size estimate sizes the upload's part buffers (partSize × (queueSize + 1) in memory),
 * so neither is taken beyond these: 64 MiB parts hold objects up to 625 GiB in 10,000 parts.
 */
const MAX_PART_BYTES = 64 * 1024 * 1024;
const MAX_ESTIMATE_BYTES = 16 * 1024 ** 4;

/**
 * The backup pipeline on the server, run as the login account. Arguments: root, the attempt's work
 * directory, the compressor (empty: none), the archive lister, then the paths.
 * 1. Entries the account cannot read, and devices and sockets (which it could not recreate), are
 *    listed to `skipped` and excluded by exact name.
 * 2. Large files the parent's block index (`blocks`, delta.ts) knows and that changed are planned
 *    to go as changed blocks: tar leaves them out (its dumpdir then keeps the parent's copy).
 * 3. tar's stream, then the deltas' stream, go to stdout (through zstd) and, by tee, to the lister,
 *    which writes the manifest's raw material to `listing` and the block index of what it read to
 *    `blocks-archived` from the very bytes archived; the index is then merged for the next backup.
 * 4. The last stderr line reports each member's exit status; tar's 1 ("file changed as we read it")
 *    is accepted, because the manifest describes what was archived, not the disk after. A failed
 *    index merge only costs the next incremental its deltas.
 */
const BACKUP_SCRIPT = `
set -u
root=$1 work=$2 compress=$3 lister=$4 delta=$5
shift 5
cd "$root" || exit 3
find "$@" \\( -type d \\( ! -readable -o ! -executable \\) -o -type f ! -readable -o -type b -o -type c -o -type s \\) -prune -printf '%y\\0%p\\0' > "$work/skipped" 2>/dev/null
excludes=()
while IFS= read -r -d '' kind && IFS= read -r -d '' name; do excludes+=("--exclude=$name"); done < "$work/skipped"
: > "$work/delta-plan"
if [ -s "$work/blocks" ]; then python3 -c "$delta" plan "$work" > "$work/delta-plan" || : > "$work/delta-plan"; fi
while IFS= read -r -d '' name; do excludes+=("--exclude=$name"); done < "$work/delta-plan"
mkfifo "$work/archive" || exit 3
python3 -c "$lister" "$work/blocks-archived" < "$work/archive" > "$work/listing" & listing=$!
{ tar --create --file=- --format=posix --sparse --numeric-owner --listed-incremental="$work/tar.snar" ${TAR_PROGRESS_OPTIONS} \\
  --anchored --no-wildcards "\${excludes[@]}" -- "$@"; echo $? > "$work/tar-status"
  [ ! -s "$work/delta-plan" ] || python3 -c "$delta" write "$work"; } | tee "$work/archive" | \${compress:-cat}
codes=("\${PIPESTATUS[@]}")
wait "$listing"; lc=$?
tc=$(cat "$work/tar-status" 2>/dev/null || echo 2)
ic=0; python3 -c "$delta" merge "$work" || { ic=$?; rm -f -- "$work/blocks"; }
echo "${EXIT_REPORT_MARK} tar=$tc deltas=\${codes[0]} tee=\${codes[1]} compress=\${codes[2]} lister=$lc index=$ic" >&2
[ "$tc" -le 1 ] && [ "\${codes[0]}" -eq 0 ] && [ "\${codes[1]}" -eq 0 ] && [ "\${codes[2]}" -eq 0 ] && [ "$lc" -eq 0 ]
`.trim();

/** Removes a tree the account made, including directories it restored read-only. */
const REMOVE_TREE = `remove_tree() { [ -e "$1" ] || [ -L "$1" ] || return 0; find "$1" -type d ! -perm -u=rwx -user "$(id -u)" -exec chmod u+rwx {} \\; 2>/dev/null; rm -rf -- "$1" 2>/dev/null; }`;

/**
 * Moves restored paths into place. Arguments: root, the staging directory, the attempt id, then the
 * paths. What was there is first renamed aside in its own directory (which works even for a tree
 * another user owns, where deleting would not), then removed as far as the account can; the paths
 * that could not be removed are printed, NUL-terminated.
 */
const SWAP_SCRIPT = `
set -u
${REMOVE_TREE}
root=$1 stage=$2 attempt=$3
shift 3
cd "$root" || exit 3
for p in "$@"; do
  parent=$(dirname -- "$p") base=$(basename -- "$p")
  aside="$parent/.$base.berth-replaced-$attempt"
  mkdir -p -- "$parent" || exit 3
  if [ -e "$p" ] || [ -L "$p" ]; then mv -T -- "$p" "$aside" || exit 3; fi
  mv -T -- "$stage/$p" "$p" || exit 3
  remove_tree "$aside"
  if [ -e "$aside" ] || [ -L "$aside" ]; then printf '%s\\0' "$aside"; fi
done
remove_tree "$stage"
`.trim();

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

/** Runs `onAbort` once if `signal` aborts before `dispose()`; `check()` throws the abort reason. */
function abortScope(signal: AbortSignal | undefined) {
  const handlers = new Set<() => void>();
  const fire = () => {
    for (const handler of handlers) handler();
  };
  signal?.addEventListener('abort', fire, { once: true });
  return {
    check: () => signal?.throwIfAborted(),
    onAbort(handler: () => void) {
      handlers.add(handler);
      if (signal?.aborted) handler();
    },
    dispose: () => signal?.removeEventListener('abort', fire),
  };
}

const skipReasons: Record<string, SkippedEntry['reason']> = { d: 'unreadable', f: 'unreadable', b: 'device', c: 'device', s: 'socket' };

/** The deepest directory holding all `paths` (relative), with a trailing slash, or '' for the root. */
function commonParent(paths: readonly string[]): string {
  const parents = paths.map((p) => p.split('/').slice(0, -1));
  const common: string[] = [];
  for (let i = 0; parents.every((p) => i < p.length && p[i] === parents[0]![i]); i++) common.push(parents[0]![i]!);
  return common.map((part) => `${part}/`).join('');
}

function parseSkipped(buf: Buffer): SkippedEntry[] {
  const fields = buf.toString('utf8').split('\0');
  fields.pop();
  const out: SkippedEntry[] = [];
  for (let i = 0; i + 1 < fields.length; i += 2) out.push({ path: fields[i + 1]!, reason: skipReasons[fields[i]!] ?? 'unreadable' });
  return out;
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
  const staleAttemptMs = config.staleAttemptMs ?? 24 * 3600_000;
  const staleMinutes = Math.max(1, Math.ceil(staleAttemptMs / 60_000));
  const transport = config.transport ?? 'openssh';
  if (paths.length === 0) throw backupFailure(ErrorType.Misconfigured, 'no backup paths configured');
  if (!masterKeys[currentKeyId]) throw backupFailure(ErrorType.Misconfigured, `current master key ${currentKeyId} is not configured`);

  const userPrefix = (userId: string) => `${keyPrefix}${userId}/`;
  sendPartsUnsigned(s3, bucket, keyPrefix);
  // The adopted snapshot is named by the backup it belongs to, and `current` (replaced atomically) names it.
  const currentMarker = `${stateDir}/snapshot.current`;
  const snapshotOf = (backupId: string) => `${stateDir}/snapshot-${backupId}.snar`;
  // The block index of the files as that backup holds them (delta.ts), adopted with its snapshot.
  const blocksOf = (backupId: string) => `${stateDir}/blocks-${backupId}`;

  /** Aborts the multipart uploads of exactly this key (MinIO lists uploads only for an exact key). */
  async function abortUploads(key: string): Promise<number> {
    let aborted = 0;
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      const page = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: key, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }));
      for (const u of page.Uploads ?? []) {
        if (u.Key !== key || !u.UploadId) continue;
        await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key, UploadId: u.UploadId }));
        aborted++;
      }
      if (!page.IsTruncated) return aborted;
      keyMarker = page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
    }
  }

  /** Removes an attempt's object and any upload of it: only ever the key an attempt itself wrote. */
  async function removeObject(key: string): Promise<void> {
    await abortUploads(key);
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
  }

  async function headSize(key: string, signal?: AbortSignal): Promise<number | undefined> {
    try {
      const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: signal });
      return head.ContentLength;
    } catch (err) {
      const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (status === 404) return undefined;
      throw err;
    }
  }

  async function getStream(key: string, opts: { range?: string; signal?: AbortSignal } = {}): Promise<Readable> {
    try {
      const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: opts.range }), { abortSignal: opts.signal });
      return res.Body as Readable;
    } catch (err) {
      const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (status === 404) throw backupFailure(ErrorType.BackupCorrupt, `backup object ${key} is missing from storage`, err);
      throw err;
    }
  }

  /**
   * Reads the stored object back and authenticates it: its header must be the one this attempt
   * wrote (which names a data key made for this object alone) and every chunk must authenticate under
   * that key with its index and final flag, so the stored bytes are exactly the ones sent. Returns the
   * size and SHA-256 of what storage returned; BackupCorrupt if anything does not authenticate.
   */
  async function verifyStoredObject(key: string, sentHeader: Buffer, signal?: AbortSignal): Promise<{ size: number; sha256: string }> {
    const hash = createHash('sha256');
    let size = 0;
    let header: Buffer | undefined;
    const tap = new Transform({
      transform(data: Buffer, _enc, done: TransformCallback) {
        hash.update(data);
        size += data.length;
        done(null, data);
      },
    });
    await pipeline([await getStream(key, { signal }), tap, createAuthenticateStream({ masterKeys, onHeader: (h) => { header = h; } })]);
    if (!header?.equals(sentHeader)) throw backupFailure(ErrorType.BackupCorrupt, `stored object ${key} has a header other than the one this attempt wrote`);
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

  /** Connects, and ends the connection (so every command it runs on the server) if the scope aborts. */
  async function connectIn(scope: ReturnType<typeof abortScope>, target: SshTarget): Promise<Client> {
    scope.check();
    const client = await connect(target);
    scope.onAbort(() => client.destroy());
    return client;
  }

  /**
   * The backup this one could build on: the latest completed one, if its manifest can be merged with
   * (format 2, same root and paths) and its chain is short enough. It is the parent only if the
   * server's adopted snapshot is still its (checked on the server while preparing).
   */
  async function parentCandidate(userId: string, wanted: boolean): Promise<BackupRecord | null> {
    if (!wanted) return null;
    const latest = (await store.listForUser(userId)).find((r) => r.status === 'completed' && r.verifiedAt);
    if (!latest) return null;
    const manifest = latest.manifest as unknown as AnyBackupManifest | null;
    if (manifest?.format !== 2 || manifest.root !== root || manifest.paths.join('\0') !== paths.join('\0')) return null;
    let depth = 0;
    for (let r: BackupRecord | undefined = latest; r?.kind === 'incremental'; r = r.parentId ? await store.get(r.parentId) : undefined) depth++;
    return depth >= maxChainLength ? null : latest;
  }

  /**
   * What carries this operation's bulk streams: OpenSSH when configured and possible (set up beside
   * the control connection's work), otherwise the control connection. Closed by the caller.
   */
  async function openBulk(client: Client, target: SshTarget): Promise<BulkTransport> {
    if (transport === 'openssh') {
      if (!await openSshAvailable()) {
        log.warn('the OpenSSH client (ssh, ssh-agent, ssh-add) is missing: bulk streams go over ssh2');
      } else {
        const line = await pinnedHostKeyLine(target);
        if (line) return openOpenSsh(target, line);
        log.warn({ host: target.host }, 'the pinned host key is not an ed25519 key: bulk streams go over ssh2');
      }
    }
    return ssh2Bulk(client);
  }

  function completedResult(row: BackupRecord): BackupResult {
    const manifest = row.manifest as unknown as AnyBackupManifest;
    return { backupId: row.id, kind: row.kind, parentId: row.parentId, objectKey: row.objectKey, sizeBytes: row.sizeBytes!,
      sha256: row.sha256!, archiveBytes: manifest.archiveBytes, manifest };
  }

  const service: BackupService = {
    async backup(req) {
      const backupId = req.backupId ?? randomUUID();
      const existing = await store.get(backupId);
      if (existing?.status === 'completed') return completedResult(existing);
      // Everything this attempt writes is its own: object key, work directory (snapshot copy, listing).
      const attemptId = randomUUID();
      const objectKey = `${userPrefix(req.userId)}${backupId}/${attemptId}.tar.zst.enc`;
      const work = `${stateDir}/attempt-${attemptId}`;
      const scope = abortScope(req.signal);
      const report = progressReporter(req.onProgress, req.progressIntervalMs);
      const progress: BackupProgress = { phase: 'preparing', bytesDone: 0, bytesEstimate: null, bytesStored: 0 };
      report(progress, true);
      let owner = false;
      let claimed = false;
      let client: Client | undefined;
      let bulk: Promise<BulkTransport> | undefined;
      try {
        const candidate = parentCandidate(req.userId, req.incremental ?? false);
        candidate.catch(() => {});
        client = await connectIn(scope, req.ssh);
        bulk = openBulk(client, req.ssh);
        bulk.catch(() => {});
        if (config.preBackupCommand) await mustRun(client, config.preBackupCommand, 'pre-backup step');
        scope.check();
        const starts = paths.map((p) => shq(`./${p}`)).join(' ');
        const maybeParent = await candidate;
        // One round trip: work files of attempts that died long ago (no live attempt is that old) go and
        // this attempt's directory is made (exit 97 if not); the parent's snapshot is copied if the
        // server's adopted one is still its; then tar's version, zstd's (or "none"), python3's and the
        // apparent size of the paths.
        const prepared = await runRemote(client, `{ mkdir -p -- ${shq(stateDir)} && find ${shq(stateDir)} -maxdepth 1 -name 'attempt-*' -mmin +${staleMinutes} -exec rm -rf -- {} + ; mkdir -m 700 -- ${shq(work)}; } || exit 97`
          + `; { ${maybeParent ? `test "$(cat -- ${shq(currentMarker)} 2>/dev/null)" = ${shq(maybeParent.id)} && cp -- ${shq(snapshotOf(maybeParent.id))} ${shq(`${work}/tar.snar`)}`
            + ` && { cp -- ${shq(blocksOf(maybeParent.id))} ${shq(`${work}/blocks`)} 2>/dev/null || true; } && echo parent; } || echo none`
            : 'echo none; }'}`
          + ` && tar --version | head -n 1 && { zstd -V 2>/dev/null | head -n 1 | grep . || echo none; }`
          + ` && { python3 --version 2>&1 | grep -E '^Python 3' || echo none; } && cd ${shq(root)} && du -s -c -b -- ${starts} | tail -n 1`);
        if (prepared.code !== 0) {
          throw backupFailure(prepared.code === 97 ? ErrorType.Transient : ErrorType.Misconfigured,
            `${prepared.code === 97 ? 'preparing the backup state directory' : 'inspecting the paths'} failed (exit ${prepared.code})${prepared.stderr ? `: ${prepared.stderr}` : ''}`);
        }
        const facts = prepared.stdout.toString().split('\n');
        const parent = facts[0]?.trim() === 'parent' ? maybeParent : null;
        const kind = parent ? 'incremental' : 'full';
        const tarVersion = facts[1]?.trim() ?? 'unknown';
        const serverZstd = facts[2]?.trim() && facts[2].trim() !== 'none' ? facts[2].trim() : undefined;
        const python = facts[3]?.trim();
        if (!python || python === 'none') throw backupFailure(ErrorType.Misconfigured, 'the server has no python3: the manifest is read from the archive with its tarfile module');
        // The server's own word: a number only within reason, or none (it sizes the upload's parts).
        const estimate = Number(facts[4]?.split(/\s/)[0]);
        progress.bytesEstimate = Number.isSafeInteger(estimate) && estimate > 0 ? Math.min(estimate, MAX_ESTIMATE_BYTES) : null;
        const where = compressOn === 'server' && serverZstd ? 'server' : 'worker';
        if (compressOn === 'server' && !serverZstd) log.warn({ backupId }, 'the server has no zstd: compressing in the worker');
        scope.check();

        const claim = await store.claim({ id: backupId, userId: req.userId, serverId: req.serverId ?? null, kind, parentId: parent?.id ?? null,
          objectKey, encryptionKeyId: currentKeyId, expiresAt: req.expiresAt ?? null, attemptId });
        if (!claim.owned) {
          // Another attempt completed it meanwhile: this one wrote nothing in storage.
          await runRemote(client, `rm -rf -- ${shq(work)}`).catch(() => {});
          return completedResult(claim.completed);
        }
        owner = true;
        claimed = true;
        log.info({ backupId, attemptId, userId: req.userId, kind, parentId: parent?.id ?? null, compressOn: where }, 'backup started');

        const compressor = where === 'server' ? `zstd -${zstdLevel} -q -T${zstdThreads}` : '';
        const remote = await (await bulk).start(guardedCommand(`bash -c ${shq(BACKUP_SCRIPT)} berth-backup ${shq(root)} ${shq(work)} ${shq(compressor)} ${shq(ARCHIVE_LISTER_PY)} ${shq(DELTA_PY)} ${starts}`));
        scope.onAbort(() => remote.kill());
        // Progress is tar's own count of archive bytes (before compression), reported every ~10 MiB.
        const tarErr = watchTarStderr(remote.stderr, (n) => {
          progress.bytesDone = n;
          report(progress);
        });
        const exited = remote.exited('tar', tarErr.text);
        exited.catch(() => {});

        progress.phase = 'streaming';
        report(progress, true);
        let received = 0;
        // The archive ends only when the pipeline said it succeeded: a dropped connection looks like EOF otherwise.
        const gate = new Transform({
          transform(data: Buffer, _enc, done: TransformCallback) {
            received += data.length;
            done(null, data);
          },
          flush(done: TransformCallback) {
            exited.then((code) => done(code === 0 ? null : backupFailure(ErrorType.Transient,
              `the backup pipeline failed (exit ${code}; ${JSON.stringify(tarErr.exits() ?? {})})${tarErr.text() ? `: ${tarErr.text()}` : ''}`)), done);
          },
        });
        const meter = new Transform({
          readableHighWaterMark: chunkSize,
          transform(data: Buffer, _enc, done: TransformCallback) {
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
        const encrypt = createEncryptStream({ keyId: currentKeyId, masterKeys, chunkSize });
        const streams = [remote.stdout, ...stages, encrypt, meter, upload.stream];
        const piped = pipeline(streams);
        piped.catch(() => {});
        // pipeline() settles only once every stream closed, and an SSH channel closes only when the
        // server's tar has exited — which it will not while its output is blocked. Fail on the first error.
        const firstError = new Promise<never>((_resolve, reject) => {
          for (const stream of streams) stream.once('error', reject);
          scope.onAbort(() => reject(req.signal!.reason));
        });
        firstError.catch(() => {});
        try {
          await Promise.race([piped, firstError]);
        } catch (err) {
          remote.kill();
          upload.stream.destroy(err as Error);
          // Let an in-flight CreateMultipartUpload/UploadPart settle (and the upload be aborted) before removing the object.
          await Promise.race([upload.cleanedUp(), sleep(30_000)]);
          throw err;
        }
        const sizeBytes = progress.bytesStored;
        const archiveBytes = tarErr.archiveBytes() ?? received;
        const tarExit = tarErr.exits()?.tar ?? 0;
        progress.bytesDone = archiveBytes;

        // Verified means read back from storage, not what we believe we sent; the listing comes meanwhile.
        progress.phase = 'verifying';
        report(progress, true);
        // The listing, what was left out and the deltas' listing in one round trip: their sizes on a line, then the files.
        const workFileNames = ['listing', 'skipped', 'delta-listing', 'delta-base'];
        const [reread, workFiles] = await Promise.all([
          verifyStoredObject(objectKey, encrypt.header, req.signal),
          mustRun(client, `cd -- ${shq(work)} && touch -- ${workFileNames.join(' ')} && stat -c %s ${workFileNames.join(' ')} | tr '\\n' ' ' && echo && cat ${workFileNames.join(' ')}`,
            'reading the archive listing', ErrorType.Transient, workFileNames.length * maxListingBytes),
        ]);
        const newline = workFiles.indexOf(0x0a);
        let offset = newline + 1;
        const [listing, skippedList, deltaListing, deltaBase] = workFiles.subarray(0, newline).toString().trim().split(' ').map(Number).map((n) => {
          offset += n;
          return workFiles.subarray(offset - n, offset);
        }) as [Buffer, Buffer, Buffer, Buffer];
        if (reread.size !== sizeBytes) throw backupFailure(ErrorType.BackupCorrupt, `stored object ${objectKey} is ${reread.size} bytes, ${sizeBytes} were sent`);
        const sha256 = reread.sha256;
        let entries: ManifestEntry[];
        let deltas = 0;
        try {
          const parentEntries = parent ? (parent.manifest as unknown as BackupManifestV2).entries : undefined;
          entries = manifestEntries(parseArchiveListing(listing), parentEntries);
          if (deltaListing.length > 0) {
            if (!parentEntries) throw new ManifestMergeError('a full backup holds deltas');
            ({ entries, count: deltas } = applyDeltas(entries, parentEntries, deltaListing, deltaBase));
          }
        } catch (err) {
          if (!(err instanceof ManifestMergeError)) throw err;
          // Forget the adopted snapshot: the next attempt makes a full backup, whose manifest needs no parent.
          await runRemote(client, `rm -f -- ${shq(currentMarker)}`).catch(() => {});
          throw backupFailure(ErrorType.Transient, `the archive's manifest could not be built (${err.message}); the next attempt makes a full backup`, err);
        }
        const skipped = parseSkipped(skippedList);
        const warnings = tarExit === 1 ? tarErr.text().split('\n').filter(Boolean).slice(0, 50) : [];
        const files = entries.filter((e) => e.type === 'f');
        const manifest: BackupManifestV2 = {
          format: 2, root, paths, kind, parentId: parent?.id ?? null,
          fileCount: files.length, dirCount: entries.filter((e) => e.type === 'd').length, symlinkCount: entries.filter((e) => e.type === 'l').length,
          totalBytes: files.reduce((n, e) => n + (e.size ?? 0), 0),
          treeDigest: canonicalDigest(canonicalFromManifest(entries)), contentHash: 'blake2b-256', entries, skipped, warnings, ...(deltas > 0 && { deltas }),
          notKept: ['owner', 'xattrs', 'acls'], archiveBytes, storedBytes: sizeBytes,
          encryption: { algorithm: 'aes-256-gcm-chunked-v1', keyId: currentKeyId, chunkSize },
          compression: { algorithm: 'zstd', level: zstdLevel, where },
          tools: { tar: tarVersion, zstd: where === 'server' ? serverZstd! : `zlib ${process.versions.zstd ?? 'unknown'}`, node: process.version, python },
          preBackupCommand: config.preBackupCommand ?? null,
        };
        scope.check();
        if (!await store.markCompleted(backupId, attemptId, { sizeBytes, sha256, manifest: manifest as unknown as BackupManifest, verifiedAt: new Date() })) {
          owner = false;
          throw backupFailure(ErrorType.Transient, `backup ${backupId} was taken over by a newer attempt; attempt ${attemptId} stands down`);
        }
        if (skipped.length > 0) log.warn({ backupId, skipped: skipped.length, first: skipped.slice(0, 5) }, 'entries the account cannot read or restore were left out of the backup');
        if (warnings.length > 0) log.warn({ backupId, warnings: warnings.slice(0, 5) }, 'files changed while they were archived; the backup holds them as archived');
        // Only now does the server's snapshot state move on; if this fails the next backup is a full one.
        await mustRun(client, `mv -f -- ${shq(`${work}/tar.snar`)} ${shq(snapshotOf(backupId))}`
          + ` && { [ ! -e ${shq(`${work}/blocks`)} ] || mv -f -- ${shq(`${work}/blocks`)} ${shq(blocksOf(backupId))}; } && printf %s ${shq(backupId)} > ${shq(`${work}/current`)}`
          + ` && mv -f -- ${shq(`${work}/current`)} ${shq(currentMarker)} && find ${shq(stateDir)} -maxdepth 1 \\( -name 'snapshot-*.snar' ! -name ${shq(`snapshot-${backupId}.snar`)}`
          + ` -o -name 'blocks-*' ! -name ${shq(`blocks-${backupId}`)} \\) -delete`
          + ` ; rm -rf -- ${shq(work)}`, 'adopting the snapshot file')
          .catch((err: unknown) => log.warn({ backupId, err: errorMessage(err) }, 'could not adopt the tar snapshot file; the next backup will be full'));
        log.info({ backupId, attemptId, kind, sizeBytes, archiveBytes }, 'backup completed and verified');
        return { backupId, kind, parentId: parent?.id ?? null, objectKey, sizeBytes, sha256, archiveBytes, manifest };
      } catch (err) {
        const aborted = req.signal?.aborted ?? false;
        const typed = asTyped(err, 'backup failed');
        log.warn({ backupId, attemptId, userId: req.userId, type: typed.type, err: typed.message, aborted }, 'backup attempt failed');
        if (owner) await store.markFailed(backupId, attemptId).catch((e: unknown) => log.error({ backupId, err: errorMessage(e) }, 'could not mark backup failed'));
        if (claimed) {
          // Only this attempt's own object; if removing it fails the attempt stays unfinished and the prune sweeps it later.
          await removeObject(objectKey)
            .then(() => store.finishAttempt(attemptId, owner ? 'failed' : 'superseded'))
            .catch((e: unknown) => log.warn({ backupId, attemptId, err: errorMessage(e) }, 'could not remove the attempt\'s object; the prune will'));
        }
        if (client && !aborted) await runRemote(client, `rm -rf -- ${shq(work)}`).catch(() => {});
        if (aborted) throw req.signal!.reason;
        throw typed;
      } finally {
        scope.dispose();
        await bulk?.then((b) => b.close(), () => {});
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
      const manifest = target.manifest as unknown as AnyBackupManifest;
      const restoreRoot = req.root ?? manifest.root;
      const scope = abortScope(req.signal);
      // Refuse before touching the server: every object present at its recorded size, every key opens.
      for (const link of chain) {
        const size = await headSize(link.objectKey, req.signal);
        if (size === undefined) throw backupFailure(ErrorType.BackupCorrupt, `backup object ${link.objectKey} is missing from storage`);
        if (size !== link.sizeBytes) throw backupFailure(ErrorType.BackupCorrupt, `backup object ${link.objectKey} is ${size} bytes, recorded ${link.sizeBytes}`);
        const head: Buffer[] = [];
        for await (const c of await getStream(link.objectKey, { range: 'bytes=0-16383', signal: req.signal })) head.push(c as Buffer);
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
      // Each attempt stages into its own directory, beside the restored paths (same filesystem, and a
      // directory the account can write to); a retry never extracts into a tree an earlier attempt is still writing.
      const attemptId = randomUUID();
      const stageParent = commonParent(manifest.paths);
      const stage = `./${stageParent}.berth-restore-${attemptId}`;
      let client: Client | undefined;
      let bulk: Promise<BulkTransport> | undefined;
      let createdParent = '';
      try {
        client = await connectIn(scope, req.ssh);
        bulk = openBulk(client, req.ssh);
        bulk.catch(() => {});
        // Prints the account's uid, whether it has zstd, and the topmost directory it had to create for the stage (removed again if the restore fails).
        const prepared = (await mustRun(client, `${REMOVE_TREE}; mkdir -p -- ${shq(restoreRoot)} && cd ${shq(restoreRoot)}`
          + ` && created= && d=${shq(`./${stageParent}`)} && while [ ! -e "$d" ]; do created=$d; d=$(dirname -- "$d"); done`
          + ` && mkdir -p -- ${shq(`./${stageParent}`)} && { find ${shq(`./${stageParent}`)} -maxdepth 1 -name '.berth-restore-*' -mmin +${staleMinutes} -print0 | while IFS= read -r -d '' d; do remove_tree "$d"; done; }`
          + ` && mkdir -m 700 -- ${shq(stage)} && id -u && { command -v zstd >/dev/null && echo zstd || echo none; } && printf '%s\\n' "$created"`, 'preparing the restore directory')).toString().split('\n');
        const accountUid = Number(prepared[0]);
        createdParent = prepared[2] ?? '';
        // Decompress where the backup was compressed by default: on the server if it has zstd (tar -I runs `zstd -d`).
        const serverSide = compressOn === 'server' && prepared[1]?.trim() === 'zstd';
        for (const [i, link] of chain.entries()) {
          scope.check();
          // The account extracts as itself: ownership is not restored (docs/decisions/), modes and times are.
          // A link holding deltas has a second tar stream after the first one's end-of-archive blocks.
          const deltas = (link.manifest as unknown as Partial<BackupManifestV2> | null)?.deltas ?? 0;
          const remote = await (await bulk).start(guardedCommand(`cd ${shq(restoreRoot)} && tar --extract --file=- --listed-incremental=/dev/null --no-same-owner --same-permissions`
            + `${deltas > 0 ? ' --ignore-zeros' : ''}${serverSide ? ` --use-compress-program=${shq('zstd -q')}` : ''} -C ${shq(stage)}`, { input: true }));
          scope.onAbort(() => remote.kill());
          const stderr = collectStderr(remote.stderr);
          const exited = remote.exited('tar -x', stderr);
          exited.catch(() => {});
          remote.stdout.resume();
          let size = 0;
          // Every chunk is authenticated before its bytes go on (crypto.ts); the last block goes on only at the recorded size.
          let held: Buffer | undefined;
          const meter = new Transform({
            transform(data: Buffer, _enc, done: TransformCallback) {
              size += data.length;
              progress.bytesStored += data.length;
              const previous = held;
              held = data;
              done(null, previous);
            },
            flush(done: TransformCallback) {
              if (size !== link.sizeBytes) done(backupFailure(ErrorType.BackupCorrupt, `backup object ${link.objectKey} is ${size} bytes, recorded ${link.sizeBytes}`));
              else done(null, held);
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
            await pipeline([await getStream(link.objectKey, { signal: req.signal }), ...stages, counter, remote.stdin]);
          } catch (err) {
            remote.kill();
            throw err;
          }
          const code = await exited;
          if (code !== 0) throw backupFailure(ErrorType.Transient, `tar -x exited with ${code}${stderr() ? `: ${stderr()}` : ''}`);
          // The changed blocks go into the previous link's copies (checked with the whole tree below).
          if (deltas > 0) await mustRun(client, `cd ${shq(restoreRoot)} && python3 -c ${shq(DELTA_PY)} patch ${shq(stage)}`, 'applying the changed blocks');
          // The next link writes into directories this one may have made read-only; its own headers set their modes again.
          if (i < chain.length - 1) {
            await mustRun(client, `cd ${shq(restoreRoot)} && find ${shq(stage)} -type d ! -perm -u=wx -exec chmod u+wx {} \\;`, 'opening restored directories for the next link');
          }
        }

        // Check the staged tree (nothing else writes there) before anything moves into place.
        progress.phase = 'checking';
        report(progress, true);
        scope.check();
        const stageDir = `${restoreRoot.replace(/\/+$/, '')}/${stage.slice(2)}`;
        const listed = await listRemoteTree(client, stageDir, manifest.paths, manifest.format === 2 ? 'blake2b-256' : (manifest.contentHash ?? 'sha256'));
        const expected: CanonicalEntry[] = manifest.format === 2 ? canonicalFromManifest(manifest.entries) : canonicalFromTree(manifest.entries, { links: false });
        const actual = canonicalFromTree(listed.entries, { links: manifest.format === 2 });
        const differences = canonicalDifferences(expected, actual);
        const foreign = listed.entries.filter((e) => e.uid !== accountUid);
        if (foreign.length > 0) differences.push(`${foreign.length} restored entries are not owned by the restoring account (uid ${accountUid}), e.g. ${JSON.stringify(foreign[0]!.path)}`);
        if (differences.length > 0) {
          throw backupFailure(ErrorType.BackupCorrupt, `restored tree differs from the manifest of ${target.id}: ${differences.join('; ')}`);
        }

        scope.check();
        const swapped = await mustRun(client, `bash -c ${shq(SWAP_SCRIPT)} berth-swap ${shq(restoreRoot)} ${shq(stage)} ${shq(attemptId)} ${manifest.paths.map((p) => shq(`./${p}`)).join(' ')}`,
          'moving the restored files into place');
        const leftovers = swapped.toString('utf8').split('\0').filter(Boolean);
        if (leftovers.length > 0) log.warn({ backupId: target.id, leftovers }, 'the replaced tree holds entries the account cannot remove; they were left beside it');
        if (config.postRestoreCommand) {
          await mustRun(client, `cd ${shq(restoreRoot)} && ${config.postRestoreCommand}`, 'post-restore step');
        }
        log.info({ backupId: target.id, chain: chain.map((l) => l.id), fileCount: listed.fileCount }, 'restore completed and verified');
        const digest = manifest.format === 2 ? canonicalDigest(actual) : listed.digest;
        return { backupId: target.id, chain: chain.map((l) => l.id), fileCount: listed.fileCount, totalBytes: listed.totalBytes, treeDigest: digest, leftovers };
      } catch (err) {
        const aborted = req.signal?.aborted ?? false;
        if (client && !aborted) {
          const created = createdParent ? ` && find ${shq(createdParent)} -depth -type d -empty -delete` : '';
          await runRemote(client, `${REMOVE_TREE}; cd ${shq(restoreRoot)} && remove_tree ${shq(stage)}${created}`).catch(() => {});
        }
        if (aborted) throw req.signal!.reason;
        throw asTyped(err, 'restore failed');
      } finally {
        scope.dispose();
        await bulk?.then((b) => b.close(), () => {});
        client?.end();
      }
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
      const swept: string[] = [];
      // Attempts unfinished for longer than any attempt lives died (a killed worker): remove what they left.
      for (const attempt of await store.unfinishedAttempts(new Date(now.getTime() - staleAttemptMs))) {
        const row = await store.get(attempt.backupId);
        if (!(row?.status === 'completed' && row.objectKey === attempt.objectKey)) await removeObject(attempt.objectKey);
        await store.markFailed(attempt.backupId, attempt.attemptId);
        await store.finishAttempt(attempt.attemptId, 'swept');
        swept.push(attempt.attemptId);
      }
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
          await removeObject(r.objectKey);
          await store.markDeleted(r.id, r);
          deleted.push(r.id);
        }
      }
      if (deleted.length > 0 || swept.length > 0) log.info({ deleted: deleted.length, swept: swept.length }, 'pruned backups');
      return { deleted, swept };
    },
  };
  return service;
}

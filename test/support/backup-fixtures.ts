/**
 * Shared pieces of the backup integration tests: an S3 client on the tier's MinIO, a backup service
 * on a real sshd and a real `backups` table, a hostile directory tree, and an exact tree listing.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chown, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { ListMultipartUploadsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { createLogger } from '../../lib/log.ts';
import { createBackupService, createKyselyBackupStore, type BackupServiceConfig } from '../../activities/backups/index.ts';
import { createTestDatabase, type TestDatabase } from './db.ts';
import { startSshd, type TestSshd } from './sshd.ts';

const run = promisify(execFile);

export function testS3(): S3Client {
  return new S3Client({
    endpoint: process.env.AWS_ENDPOINT_URL_S3,
    region: process.env.AWS_REGION ?? 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: process.env.AWS_ACCESS_KEY_ID!, secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY! },
  });
}

export function testBucket(): string {
  const bucket = process.env.S3_BUCKET;
  if (!bucket) throw new Error('S3_BUCKET is not set: run through the integration project');
  return bucket;
}

export const masterKeys = { 'test-k1': randomBytes(32) };

export interface BackupWorld {
  sshd: TestSshd;
  database: TestDatabase;
  s3: S3Client;
  bucket: string;
  /** Unique object key prefix of this suite. */
  keyPrefix: string;
  userId: string;
  /** Local scratch directory, owned by the login account; the sshd serves the same filesystem. */
  dir: string;
  /** The unprivileged account the service logs in as (production's `berth`); trees it backs up are its own. */
  account: TestSshd['account'];
  /** The service's base config: pass overrides to service(). */
  config: BackupServiceConfig;
  service: (overrides?: Partial<BackupServiceConfig>) => ReturnType<typeof createBackupService>;
  stop(): Promise<void>;
}

/**
 * sshd (logging in as an unprivileged account, as production does) + migrated scratch schema + a
 * user + a backup service backing up `<dir>/src` (relative to /).
 * `sshdConfig`: extra sshd_config lines (e.g. a ForceCommand that plays a hostile shell).
 */
export async function startBackupWorld(name: string, opts: { sshdConfig?: string[] } = {}): Promise<BackupWorld> {
  const dir = await mkdtemp(path.join(tmpdir(), `berth-${name}-`));
  const [sshd, database] = await Promise.all([startSshd({ config: opts.sshdConfig }), createTestDatabase({ name })]);
  // The account's state directory and restore targets live here, as its home would hold them.
  await chown(dir, sshd.account.uid, sshd.account.gid);
  const user = await database.db.insertInto('users')
    .values({ email: `${name}-${randomBytes(3).toString('hex')}@example.test`, passwordHash: 'x', name })
    .returning('id').executeTakeFirstOrThrow();
  const s3 = testS3();
  const bucket = testBucket();
  const keyPrefix = `test-${name}-${randomBytes(4).toString('hex')}/`;
  const config: BackupServiceConfig = {
    s3, bucket, keyPrefix, masterKeys, currentKeyId: 'test-k1',
    store: createKyselyBackupStore(database.db),
    log: createLogger(name, 'silent'),
    paths: [path.join(dir, 'src').slice(1)],
    root: '/',
    stateDir: path.join(dir, 'state'),
    partSize: 5 * 1024 * 1024,
  };
  return {
    sshd, database, s3, bucket, keyPrefix, userId: user.id, dir, account: sshd.account, config,
    service: (overrides = {}) => createBackupService({ ...config, ...overrides }),
    async stop() {
      await sshd.stop();
      await database.drop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Multipart uploads still open under a prefix (orphaned parts cost money and hide failures). */
export async function openUploads(s3: S3Client, bucket: string, prefix: string): Promise<string[]> {
  const res = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
  return (res.Uploads ?? []).map((u) => u.Key!);
}

export async function objectKeys(s3: S3Client, bucket: string, prefix: string): Promise<string[]> {
  const res = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
  return (res.Contents ?? []).map((o) => o.Key!);
}

/** Runs a bash script with `args` as $1, $2...; rejects with its stderr if it fails. */
export async function sh(script: string, ...args: string[]): Promise<string> {
  const { stdout } = await run('bash', ['-euo', 'pipefail', '-c', script, 'bash', ...args], { maxBuffer: 256 * 1024 * 1024 });
  return stdout;
}

/** The entries of {@link buildHostileTree} a backup must leave out, and why (relative paths). */
export const hostileTreeSkipped = [
  { path: 'device', reason: 'device' },
  { path: 'foreign-dir', reason: 'unreadable' },
  { path: 'foreign-secret', reason: 'unreadable' },
  { path: 'private', reason: 'unreadable' },
  { path: 'socket', reason: 'socket' },
] as const;

/**
 * A tree built to break naive backups: symlinks (relative, absolute, dangling, to a directory),
 * hardlinks, a sparse file, a FIFO, unicode/space/newline/quote/dash names, empty files and
 * directories, a deep path, a 255-byte name, odd modes (setuid, sticky, read-only directory),
 * nanosecond mtimes on files, directories and symlinks, and a large file of `bigBytes`. It belongs to
 * `owner` ("uid:gid", the account that backs it up), except what a tool run with sudo leaves behind:
 * entries of other users that the account can read (a file, a directory, a symlink) and that it
 * cannot (a 0600 file, a 0700 directory), plus the account's own unreadable file (mode 000), a device
 * node and a socket ({@link hostileTreeSkipped}).
 */
export async function buildHostileTree(dir: string, bigBytes: number, owner: string): Promise<void> {
  await sh(`
    mkdir -p "$1" && cd "$1"
    printf 'hello\\n' > plain.txt
    printf 'unicode\\n' > 'ünïcødé-日本語-🙂.txt'
    printf 'spaces\\n' > 'with  spaces .txt'
    printf 'newline\\n' > $'new\\nline'
    printf 'quotes\\n' > "q'uote\\"s"
    printf 'dash\\n' > ./-dash
    printf 'back\\\\slash\\n' > 'back\\slash'
    : > empty-file
    mkdir -p empty-dir 'nested/empty/dir' sticky read-only/inner
    chmod 1777 sticky
    printf 'kept\\n' > read-only/inner/kept.txt && chmod 0555 read-only/inner read-only
    d=deep; for i in $(seq 1 40); do d="$d/level$i"; done; mkdir -p "$d"; printf 'deep\\n' > "$d/leaf.txt"
    printf 'long\\n' > "$(printf 'n%.0s' $(seq 1 255))"
    ln -s plain.txt link-to-file
    ln -s nested link-to-dir
    ln -s does/not/exist dangling-link
    ln -s /etc/hostname absolute-link
    ln plain.txt hardlink-1 && ln plain.txt nested/hardlink-2
    truncate -s 64M sparse.bin && printf 'island' | dd of=sparse.bin bs=1 seek=33554432 conv=notrunc status=none
    mkfifo fifo
    head -c 3145728 /dev/urandom > random.bin
    head -c 4194304 < <(yes 'compressible line of text for zstd') > text.log
    head -c ${bigBytes} /dev/urandom > big.bin
    printf 'secret\\n' > private && chmod 000 private
    printf '#!/bin/sh\\n' > setuid && chmod 4755 setuid
    chmod 0640 random.bin
    chown -R "$2" .
    printf 'foreign\\n' > foreign-readable && chown 4242:4243 foreign-readable && chmod 0444 foreign-readable
    printf 'foreign secret\\n' > foreign-secret && chown 4242:4243 foreign-secret && chmod 0600 foreign-secret
    mkdir foreign-dir && printf 'inside\\n' > foreign-dir/inside && chown -R 4242:4243 foreign-dir && chmod 0700 foreign-dir
    chown -h 4321:8765 link-to-file && chown 2222:3333 nested
    mknod device c 1 3
    python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' socket
    touch -d '2001-02-03 04:05:06.123456789' plain.txt
    touch -h -d '2002-03-04 05:06:07.987654321' link-to-file dangling-link
    find . -depth -type d -exec touch -d '2003-04-05 06:07:08.555555555' {} +
  `.replace(/^\s+/gm, ''), dir, owner);
}

/**
 * What a restore by the account must produce from a tree: `listing` (a {@link treeListing}) without
 * the entries the backup left out (`skipped`, relative paths, with everything under them; a directory
 * left out is one link fewer on its parent), and with every entry owned by the account.
 */
export function restoredByAccount(listing: readonly string[], skipped: readonly string[], owner: string): string[] {
  const relOf = (line: string) => line.slice(line.indexOf('|') + 1, line.lastIndexOf(' '));
  const isSkipped = (rel: string) => skipped.some((s) => rel === `./${s}` || rel.startsWith(`./${s}/`));
  const lostLinks = new Map<string, number>();
  for (const line of listing) {
    const rel = relOf(line);
    if (line.startsWith('d ') && skipped.some((s) => rel === `./${s}`)) lostLinks.set(path.dirname(rel), (lostLinks.get(path.dirname(rel)) ?? 0) + 1);
  }
  return listing
    .filter((line) => !isSkipped(relOf(line)))
    .map((line) => {
      const fields = line.split(' ');
      fields[2] = owner;
      fields[5] = String(Number(fields[5]) - (line.startsWith('d ') ? lostLinks.get(relOf(line)) ?? 0 : 0));
      return fields.join(' ');
    });
}

/**
 * `find -printf` of every entry under `dir`, relative to it: type, mode, owner, size (not for
 * directories), mtime in ns, link target, path, plus SHA-256 of file contents and which entries
 * share an inode. Two equal listings mean two identical trees.
 */
export async function treeListing(dir: string): Promise<string[]> {
  const out = await sh(`cd "$1" && find . -printf '%y %m %U:%G %s %T@ %n %i %l|%p\\0' | sort -z | tr '\\0' '\\036'`, dir);
  const rows = out.split('\x1e').filter(Boolean).map((line) => {
    const [type, mode, owner, size, mtime, nlink, inode, ...rest] = line.split(' ') as string[];
    const tail = rest.join(' ');
    return { type: type!, mode: mode!, owner: owner!, size: size!, mtime: mtime!, nlink: nlink!, inode: inode!, tail, relPath: tail.slice(tail.indexOf('|') + 1) };
  }).sort((a, b) => (a.relPath < b.relPath ? -1 : a.relPath > b.relPath ? 1 : 0));
  const inodeNames = new Map<string, string>();
  const result: string[] = [];
  for (const r of rows) {
    // Inode numbers differ between trees; which paths share one must not.
    const first = inodeNames.get(r.inode) ?? r.relPath;
    inodeNames.set(r.inode, first);
    const hash = r.type === 'f' ? await fileSha256(path.join(dir, r.relPath)) : '-';
    result.push([r.type, r.mode, r.owner, r.type === 'd' ? '-' : r.size, r.mtime, r.nlink, `inode-of:${first}`, r.tail, hash].join(' '));
  }
  return result;
}

/** Allocated 512-byte blocks of a file: small for a file that stayed sparse. */
export async function allocatedBlocks(file: string): Promise<number> {
  return Number((await sh('stat -c %b -- "$1"', file)).trim());
}

async function fileSha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

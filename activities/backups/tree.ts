/**
 * What a backed-up tree looked like, listed on the server by `find` and `b2sum` (or `sha256sum`), so
 * the manifest records it and a restore can be checked against it with the same commands.
 */
import { createHash } from 'node:crypto';
import type { Client } from 'ssh2';
import { ErrorType } from '../../lib/errors.ts';
import { backupFailure } from './errors.ts';
import { mustRun, shq } from './ssh.ts';

/** One filesystem entry: find's %y type, octal mode, numeric owner, size (files only), mtime, links. */
export interface TreeEntry {
  path: string;
  type: string;
  mode: string;
  uid: number;
  gid: number;
  /** Bytes for regular files and symlinks; null for directories, whose size depends on history. */
  size: number | null;
  /** Seconds since the epoch with nanoseconds, as find prints %T@. */
  mtime: string;
  nlink: number;
  /** Symlink target, '' otherwise. */
  target: string;
  /** "device:inode" (find's %D:%i), to tell which paths are hard links of each other; not part of the digest. */
  inode?: string;
  /** SHA-256 of a regular file's contents (manifests that chose 'sha256'). */
  sha256?: string;
  /** BLAKE2b-256 of a regular file's contents (manifests that chose 'blake2b-256'). */
  b2?: string;
}

/**
 * How file contents are hashed in a manifest. BLAKE2b-256 (`b2sum -l 256`, coreutils) is about 3×
 * faster than SHA-256 on CPUs without SHA extensions and is what Kopia and Borg hash with; SHA-256 is
 * for servers without b2sum and for manifests written before (which have no `contentHash` field).
 */
export type ContentHash = 'blake2b-256' | 'sha256';

const hashCommand: Record<ContentHash, { command: string; field: 'sha256' | 'b2' }> = {
  'blake2b-256': { command: 'b2sum -l 256', field: 'b2' },
  sha256: { command: 'sha256sum', field: 'sha256' },
};

/** The content hash this server can compute: BLAKE2b-256 when it has b2sum. */
export async function serverContentHash(client: Client): Promise<ContentHash> {
  const out = await mustRun(client, 'command -v b2sum >/dev/null 2>&1 && echo blake2b-256 || echo sha256', 'looking for b2sum');
  return out.toString().trim() === 'blake2b-256' ? 'blake2b-256' : 'sha256';
}

export interface TreeSummary {
  entries: TreeEntry[];
  fileCount: number;
  dirCount: number;
  symlinkCount: number;
  /** Sum of regular files' apparent sizes. */
  totalBytes: number;
  /** SHA-256 over the sorted entries: equal digests, equal trees. */
  digest: string;
}

/** Paths to back up are relative to the backup root, without '..' or a leading '-'. */
export function checkRelativePath(p: string): string {
  const clean = p.replace(/^\/+/, '').replace(/\/+$/, '');
  if (!clean || clean.split('/').some((part) => part === '..' || part === '') || clean.startsWith('-')) {
    throw backupFailure(ErrorType.Misconfigured, `backup path ${JSON.stringify(p)} must be a plain path under the root`);
  }
  return clean;
}

/**
 * Most bytes a listing (or all hash outputs together) may take: about a million files. Beyond it a
 * backup fails rather than let one customer's server fill the shared worker's memory.
 */
export const maxListingBytes = 128 * 1024 * 1024;

const FIELDS = 10;

/** Most hashing commands run at once on the server, whatever its core count. */
const MAX_HASHERS = 8;

/**
 * Lists `paths` under `root` on the server: metadata of every entry plus a hash of each file's contents.
 * Hashing is the slow part (SHA-256 runs at ~200 MB/s per core without SHA extensions, BLAKE2b at
 * ~600), so the files are dealt round-robin to one hasher per server core, each on its own exec channel
 * (separate outputs: nothing interleaves), listed at the same time.
 */
export async function listRemoteTree(client: Client, root: string, paths: readonly string[], contentHash: ContentHash = 'sha256'): Promise<TreeSummary> {
  const hasher = hashCommand[contentHash];
  const starts = paths.map((p) => shq(`./${p}`)).join(' ');
  const cd = `cd ${shq(root)}`;
  const cores = Number((await mustRun(client, 'nproc 2>/dev/null || echo 1', 'counting server cores')).toString().trim()) || 1;
  const hashers = Math.max(1, Math.min(MAX_HASHERS, cores));
  const [listing, ...hashOutputs] = await Promise.all([
    mustRun(client, `${cd} && find ${starts} -printf '%y\\0%m\\0%U\\0%G\\0%s\\0%T@\\0%n\\0%l\\0%D:%i\\0%p\\0'`, 'listing the tree', ErrorType.Transient, maxListingBytes),
    ...Array.from({ length: hashers }, (_, i) => mustRun(client,
      `${cd} && find ${starts} -type f -print0${hashers > 1 ? ` | sed -z -n '${i + 1}~${hashers}p'` : ''} | xargs -0 -r ${hasher.command} -z --`, 'hashing the tree',
      ErrorType.Transient, Math.ceil(maxListingBytes / hashers))),
  ]);

  const sums = new Map<string, string>();
  for (const record of hashOutputs.flatMap((h) => splitNul(h))) {
    // sha256sum -z and b2sum -l 256 -z print "<64 hex>  <name>" without escaping the name.
    sums.set(record.slice(66), record.slice(0, 64));
  }
  const fields = splitNul(listing);
  if (fields.length % FIELDS !== 0) throw backupFailure(ErrorType.Transient, 'tree listing was cut short');
  const entries: TreeEntry[] = [];
  for (let i = 0; i < fields.length; i += FIELDS) {
    const [type, mode, uid, gid, size, mtime, nlink, target, inode, path] = fields.slice(i, i + FIELDS) as string[] as [string, string, string, string, string, string, string, string, string, string];
    const entry: TreeEntry = { path, type, mode, uid: Number(uid), gid: Number(gid), size: type === 'd' ? null : Number(size), mtime, nlink: Number(nlink), target, inode };
    if (type === 'f') entry[hasher.field] = sums.get(path);
    entries.push(entry);
  }
  return summarize(entries);
}

function splitNul(buf: Buffer): string[] {
  const text = buf.toString('utf8');
  const parts = text.split('\0');
  if (parts.at(-1) === '') parts.pop();
  return parts;
}

export function summarize(unsorted: TreeEntry[]): TreeSummary {
  const entries = [...unsorted].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const hash = createHash('sha256');
  let fileCount = 0, dirCount = 0, symlinkCount = 0, totalBytes = 0;
  for (const e of entries) {
    hash.update(JSON.stringify([e.path, e.type, e.mode, e.uid, e.gid, e.size, e.mtime, e.nlink, e.target, e.sha256 ?? e.b2 ?? null]));
    hash.update('\n');
    if (e.type === 'f') { fileCount++; totalBytes += e.size ?? 0; }
    else if (e.type === 'd') dirCount++;
    else if (e.type === 'l') symlinkCount++;
  }
  return { entries, fileCount, dirCount, symlinkCount, totalBytes, digest: hash.digest('hex') };
}

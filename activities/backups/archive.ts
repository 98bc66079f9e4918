/**
 * The manifest of a backup is taken from the archive itself, never from a second walk of a live tree
 * (docs/decisions/). On the server, the tar stream is tee'd into a lister that reads it with Python's
 * tarfile (cloud-init, on every server Berth provisions, is Python): for each member it prints the
 * metadata tar recorded and a BLAKE2b-256 of the content tar archived, so what the manifest says is
 * exactly what a restore will extract. Incremental archives carry only what changed plus GNU tar's
 * dumpdirs (which names each directory held, renames), so their manifest is the parent's, updated.
 */
import { createHash } from 'node:crypto';
import type { TreeEntry } from './tree.ts';

/** Regular files at least this large are in the block index (delta.ts) and may go into an incremental as changed blocks. */
export const DELTA_MIN_FILE = 1024 * 1024;
/** Block size of that index and of the deltas: small, so a page written in place costs little. */
export const DELTA_BLOCK = 64 * 1024;

/**
 * Reads a tar stream on stdin and writes one record per member to stdout, NUL-separated fields:
 * typeflag, name, mode, uid, gid, size, mtime (pax text when present, with its nanoseconds), link
 * name, BLAKE2b-256 of a regular file's content ('' otherwise), and the GNU dumpdir as hex ('-' if
 * none). Names are bytes as archived. It reads to the end, so the tee feeding it never sees a closed
 * pipe after tar's end-of-archive blocks. Content is hashed in 64 KiB reads: larger ones cost more
 * system time (fresh mappings per read), a larger tarfile buffer costs small files (docs/benchmarks.md).
 * Given a path (argument 1), it also writes there the block index lines (delta.ts) of the regular
 * files it read: BLAKE2b-128 of each 64 KiB block of the large ones, a removal line for the others.
 */
export const ARCHIVE_LISTER_PY = `
import hashlib, os, sys, tarfile
src, out = sys.stdin.buffer, sys.stdout.buffer
index = open(sys.argv[1], 'wb') if len(sys.argv) > 1 else None
with tarfile.open(fileobj=src, mode='r|', errors='surrogateescape') as archive:
    for m in archive:
        digest = b''
        dumpdir = m.pax_headers.get('GNU.dumpdir')
        mtime = m.pax_headers.get('mtime') or '%d' % m.mtime
        if m.isreg():
            h = hashlib.blake2b(digest_size=32)
            blocks = bytearray() if index and m.size >= ${DELTA_MIN_FILE} else None
            f = archive.extractfile(m)
            for block in iter(lambda: f.read(${DELTA_BLOCK}), b''):
                h.update(block)
                if blocks is not None: blocks += hashlib.blake2b(block, digest_size=16).digest()
            digest = h.hexdigest().encode()
            if index:
                name = os.fsencode(m.name).hex().encode()
                whole, _, frac = mtime.partition('.')
                ns = int(whole) * 10 ** 9 + int((frac + '000000000')[:9])
                index.write(b'\\t'.join((name, b'%d' % m.size, b'%d' % ns, digest, bytes(blocks).hex().encode())) + b'\\n' if blocks is not None else name + b'\\n')
        out.write(b'\\0'.join((m.type, os.fsencode(m.name), b'%d' % m.mode, b'%d' % m.uid, b'%d' % m.gid, b'%d' % m.size,
            mtime.encode(), os.fsencode(m.linkname), digest, os.fsencode(dumpdir).hex().encode() if dumpdir is not None else b'-')) + b'\\0')
while src.read(1 << 16):
    pass
`.trim();

/** One archive member as the lister reports it. */
export interface ArchiveMember {
  /** The tar typeflag: '0' file, '1' hard link, '2' symlink, '5' directory, '6' fifo, '3'/'4' devices... */
  typeflag: string;
  path: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Seconds since the epoch, "S.NNNNNNNNN". */
  mtime: string;
  /** Symlink target or, for a hard link, the path of the member it links to. */
  linkname: string;
  /** Bytes of `linkname` as archived (a symlink's size on disk). */
  linknameBytes: number;
  b2: string;
  /** GNU tar's dumpdir of a directory in an incremental archive: one code and name per item. */
  dumpdir: { code: string; name: string }[] | null;
}

/**
 * One entry of a format-2 manifest: what tar archived, as a restore must reproduce it. `uid`/`gid`
 * are the owners recorded at backup time, for information only: a restore makes the account it runs
 * as own everything (docs/decisions/), so they are not part of the digest or of the restore check.
 */
export interface ManifestEntry {
  path: string;
  /** find's %y letters: f file, d directory, l symlink, p fifo. */
  type: 'f' | 'd' | 'l' | 'p';
  /** Permission bits in octal, as find's %m prints them ("755", "4755", "0"). */
  mode: string;
  /** Bytes for files and fifos, the target's length for symlinks, null for directories. */
  size: number | null;
  mtime: string;
  /** Symlink target, '' otherwise. */
  target: string;
  /** Hard links: the path of another entry with the same content and inode. */
  link?: string;
  /** BLAKE2b-256 of a regular file's contents. */
  b2?: string;
  uid: number;
  gid: number;
}

/** The merge of an incremental archive with its parent's manifest found something it cannot place. */
export class ManifestMergeError extends Error {}

const FIELDS = 10;

/** Normalizes "S", "S.F" (any number of fraction digits) to "S.NNNNNNNNN". */
export function normalizeMtime(text: string): string {
  const [whole = '0', fraction = ''] = text.trim().split('.');
  return `${whole}.${fraction.padEnd(9, '0').slice(0, 9)}`;
}

/** Parses the lister's output. */
export function parseArchiveListing(buf: Buffer): ArchiveMember[] {
  const fields: Buffer[] = [];
  let start = 0;
  for (let i = buf.indexOf(0); i >= 0; i = buf.indexOf(0, start)) {
    fields.push(buf.subarray(start, i));
    start = i + 1;
  }
  if (start !== buf.length || fields.length % FIELDS !== 0) throw new Error('the archive listing was cut short');
  const members: ArchiveMember[] = [];
  for (let i = 0; i < fields.length; i += FIELDS) {
    const [typeflag, name, mode, uid, gid, size, mtime, linkname, b2, dumpdir] = fields.slice(i, i + FIELDS) as Buffer[] as [Buffer, Buffer, Buffer, Buffer, Buffer, Buffer, Buffer, Buffer, Buffer, Buffer];
    const dumpdirText = dumpdir.toString();
    members.push({
      typeflag: typeflag.toString(),
      path: name.toString('utf8'),
      mode: Number(mode.toString()),
      uid: Number(uid.toString()),
      gid: Number(gid.toString()),
      size: Number(size.toString()),
      mtime: normalizeMtime(mtime.toString()),
      linkname: linkname.toString('utf8'),
      linknameBytes: linkname.length,
      b2: b2.toString(),
      dumpdir: dumpdirText === '-' ? null : parseDumpdir(Buffer.from(dumpdirText, 'hex')),
    });
  }
  return members;
}

function parseDumpdir(raw: Buffer): { code: string; name: string }[] {
  const items: { code: string; name: string }[] = [];
  let start = 0;
  for (let i = raw.indexOf(0); i >= 0; i = raw.indexOf(0, start)) {
    if (i > start) items.push({ code: String.fromCharCode(raw[start]!), name: raw.subarray(start + 1, i).toString('utf8') });
    start = i + 1;
  }
  return items;
}

const typeOf: Record<string, ManifestEntry['type']> = { '0': 'f', '\0': 'f', '': 'f', '7': 'f', '1': 'f', '2': 'l', '5': 'd', '6': 'p' };

function entryOf(m: ArchiveMember): ManifestEntry {
  const type = typeOf[m.typeflag];
  // Devices and sockets are left out before tar runs; one that appears meanwhile cannot be restored by the account.
  if (!type) throw new ManifestMergeError(`${JSON.stringify(m.path)} has a type (tar typeflag ${JSON.stringify(m.typeflag)}) a restore cannot recreate`);
  const entry: ManifestEntry = {
    path: m.path, type, mode: (m.mode & 0o7777).toString(8),
    size: type === 'd' ? null : type === 'l' ? m.linknameBytes : m.size,
    mtime: m.mtime, target: type === 'l' ? m.linkname : '', uid: m.uid, gid: m.gid,
  };
  if (m.typeflag === '1') entry.link = m.linkname;
  if (type === 'f' && m.typeflag !== '1') entry.b2 = m.b2;
  return entry;
}

/**
 * The manifest entries of an archive. A full archive lists everything; an incremental one is merged
 * with its parent's entries: every directory is in the archive with its dumpdir, whose 'Y' names are
 * members of this archive, 'N' names are unchanged entries taken from the parent (after applying the
 * archive's directory renames), and names it does not list are gone. Throws ManifestMergeError when
 * an unchanged name has no entry in the parent (the caller then makes a full backup instead).
 */
export function manifestEntries(members: readonly ArchiveMember[], parent?: readonly ManifestEntry[]): ManifestEntry[] {
  const archived = new Map<string, ManifestEntry>();
  for (const m of members) {
    const entry = entryOf(m);
    // A hard link's content (and size: its header says 0) is its leader's, archived before it in the same archive.
    if (entry.link !== undefined) {
      const leader = archived.get(entry.link);
      entry.b2 = leader?.b2;
      entry.size = leader?.size ?? entry.size;
    }
    archived.set(entry.path, entry);
  }
  if (!parent) return [...archived.values()];

  // The parent's tree, with the archive's directory renames applied in order.
  let previous = new Map(parent.map((e) => [e.path, e]));
  const renames = members.flatMap((m) => m.dumpdir ?? []).filter((d) => 'RTX'.includes(d.code));
  if (renames.some((d) => d.code === 'X')) throw new ManifestMergeError('the archive renames directories in a cycle (dumpdir code X)');
  for (let i = 0; i < renames.length; i += 2) {
    const from = renames[i]!, to = renames[i + 1];
    if (from.code !== 'R' || to?.code !== 'T') throw new ManifestMergeError('the archive has an unpaired directory rename');
    const move = (p: string) => (p === from.name ? to.name : p.startsWith(`${from.name}/`) ? to.name + p.slice(from.name.length) : p);
    previous = new Map([...previous.values()].map((e) => {
      const moved = { ...e, path: move(e.path), ...(e.link !== undefined && { link: move(e.link) }) };
      return [moved.path, moved];
    }));
  }

  const result = new Map<string, ManifestEntry>();
  for (const m of members) {
    if (m.typeflag !== '5') continue;
    result.set(m.path, archived.get(m.path)!);
    if (!m.dumpdir) throw new ManifestMergeError(`directory ${JSON.stringify(m.path)} has no dumpdir: not an incremental archive`);
    for (const item of m.dumpdir) {
      if (item.code !== 'N') continue;
      const path = `${m.path}/${item.name}`;
      const kept = previous.get(path);
      if (!kept || kept.type === 'd') throw new ManifestMergeError(`${JSON.stringify(path)} is unchanged since the parent backup, whose manifest does not have it`);
      result.set(path, kept);
    }
  }
  for (const [path, entry] of archived) result.set(path, entry);
  for (const entry of result.values()) {
    if (entry.link !== undefined && !result.has(entry.link)) throw new ManifestMergeError(`${JSON.stringify(entry.path)} links to ${JSON.stringify(entry.link)}, which is not in the tree`);
  }
  return [...result.values()];
}

/** What the restore check compares per path: everything a restore reproduces, owners aside. */
export interface CanonicalEntry {
  path: string;
  type: string;
  mode: string;
  size: number | null;
  mtime: string;
  target: string;
  /** The smallest path among the entries sharing this one's inode, '' if none does. */
  linkGroup: string;
  hash: string | null;
}

/** Canonical entries of a format-2 manifest: hard link groups become their smallest path. */
export function canonicalFromManifest(entries: readonly ManifestEntry[]): CanonicalEntry[] {
  const groups = new Map<string, string[]>();
  for (const e of entries) {
    if (e.link === undefined) continue;
    const group = groups.get(e.link) ?? [e.link];
    group.push(e.path);
    groups.set(e.link, group);
  }
  const leader = new Map<string, string>();
  for (const group of groups.values()) {
    const smallest = [...group].sort(byPath)[0]!;
    for (const p of group) leader.set(p, smallest);
  }
  return entries.map((e) => ({
    path: e.path, type: e.type, mode: normalizeMode(e.mode), size: e.size, mtime: e.mtime, target: e.target,
    linkGroup: leader.get(e.path) ?? '', hash: e.b2 ?? null,
  })).sort((a, b) => byPath(a.path, b.path));
}

/**
 * Canonical entries of a tree listed on the server (find + b2sum), or of a format-1 manifest (such a
 * listing). With `links`, hard links are found by inode; format-1 manifests recorded link counts
 * only, which a restore cannot reproduce for links that led outside the tree, so they are left out.
 */
export function canonicalFromTree(entries: readonly TreeEntry[], opts: { links: boolean }): CanonicalEntry[] {
  const byInode = new Map<string, string[]>();
  for (const e of entries) {
    if (!opts.links || e.type !== 'f' || e.nlink < 2 || !e.inode) continue;
    byInode.set(e.inode, [...(byInode.get(e.inode) ?? []), e.path]);
  }
  const leader = new Map<string, string>();
  for (const group of byInode.values()) {
    if (group.length < 2) continue;
    const smallest = [...group].sort(byPath)[0]!;
    for (const p of group) leader.set(p, smallest);
  }
  return entries.map((e) => ({
    path: e.path, type: e.type, mode: normalizeMode(e.mode), size: e.size, mtime: normalizeMtime(e.mtime), target: e.target,
    linkGroup: leader.get(e.path) ?? '', hash: e.b2 ?? e.sha256 ?? null,
  })).sort((a, b) => byPath(a.path, b.path));
}

/** SHA-256 over the canonical entries: equal digests, trees a restore cannot tell apart. */
export function canonicalDigest(entries: readonly CanonicalEntry[]): string {
  const hash = createHash('sha256');
  for (const e of entries) hash.update(`${JSON.stringify([e.path, e.type, e.mode, e.size, e.mtime, e.target, e.linkGroup, e.hash])}\n`);
  return hash.digest('hex');
}

/** The first few differences between what a manifest says and what a restore produced. */
export function canonicalDifferences(expected: readonly CanonicalEntry[], actual: readonly CanonicalEntry[], limit = 5): string[] {
  const key = (e: CanonicalEntry) => JSON.stringify(e);
  const found = new Map(actual.map((e) => [e.path, e]));
  const out: string[] = [];
  for (const e of expected) {
    const a = found.get(e.path);
    if (!a) out.push(`missing ${JSON.stringify(e.path)}`);
    else if (key(a) !== key(e)) out.push(`differs ${JSON.stringify(e.path)}: expected ${key(e)}, found ${key(a)}`);
    found.delete(e.path);
    if (out.length >= limit) return out;
  }
  for (const path of found.keys()) {
    out.push(`unexpected ${JSON.stringify(path)}`);
    if (out.length >= limit) break;
  }
  return out;
}

function normalizeMode(mode: string): string {
  return Number.parseInt(mode, 8).toString(8);
}

function byPath(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Changed large files go into an incremental as the blocks that changed, not whole (docs/decisions/).
 * GNU tar's incrementals are file-granular: 10 MiB rewritten inside a 64 MiB database, or a line
 * appended to a 4 MiB log, uploads the whole file again. On the server, a block index (64 KiB blocks,
 * BLAKE2b-128 each, per regular file of at least 1 MiB) describes the files as the parent backup holds
 * them; it is adopted with tar's snapshot and built from the very bytes archived (the lister's reads).
 * Before tar runs, `plan` picks the indexed files whose size or mtime changed; tar leaves them out
 * (which its dumpdir records as unchanged, so a restore keeps the previous link's copy), and after tar's
 * end-of-archive `write` appends a second tar stream holding, per file, the changed blocks (runs of up
 * to 8 MiB, at their offsets) and the file's new size, mode and mtime. It lists each file as the
 * lister does (the BLAKE2b-256 of what it read) and names the parent content it diffed against, which
 * the worker checks against the parent's manifest before the backup counts. A restore extracts both
 * streams (`tar --ignore-zeros`) and `patch` writes the blocks into the previous link's copy.
 */
import { DELTA_BLOCK, DELTA_MIN_FILE, ManifestMergeError, parseArchiveListing, type ManifestEntry } from './archive.ts';
/** The directory (in the second stream, then in a restore's staging directory) that holds the deltas. */
export const DELTA_DIR = '.berth-delta';

/**
 * The server side, one program with four commands (argument 1), all working in the attempt's work
 * directory (argument 2):
 * - `plan`: prints, NUL-separated, the indexed files (`blocks`) that changed and can go as blocks
 *   (regular, one link, not sparse, readable, still large);
 * - `write`: for each planned file, writes the delta members to stdout as a tar stream, its listing
 *   record to `delta-listing`, "path NUL base-b2 NUL" to `delta-base`, its new index entry to `blocks-delta`;
 * - `merge`: the new index: `blocks`, then what the lister saw archived (`blocks-archived`), then `blocks-delta`;
 * - `patch` (argument 2 is a restore's staging directory): applies and removes the deltas there.
 * Index lines: hex(path) TAB size TAB mtime-ns TAB b2 TAB hex of the block digests; a line of a path
 * alone removes it. Paths are tar member names ("./..."), relative to the working directory.
 */
export const DELTA_PY = `
import hashlib, io, json, os, stat, sys, tarfile
MIN, BLOCK, RUN, DIR = ${DELTA_MIN_FILE}, ${DELTA_BLOCK}, 8 << 20, '${DELTA_DIR}'
cmd, work = sys.argv[1], sys.argv[2]
def load(path, index):
    if not os.path.exists(path):
        return index
    with open(path, 'rb') as f:
        for line in f:
            parts = line.rstrip(b'\\n').split(b'\\t')
            name = bytes.fromhex(parts[0].decode())
            if len(parts) == 1: index.pop(name, None)
            else: index[name] = (int(parts[1]), int(parts[2]), parts[3].decode(), bytes.fromhex(parts[4].decode()))
    return index
def line(name, size, mtime, b2, digests):
    return b'\\t'.join((name.hex().encode(), b'%d' % size, b'%d' % mtime, b2.encode(), digests.hex().encode())) + b'\\n'
if cmd == 'plan':
    out = sys.stdout.buffer
    for name, (size, mtime, b2, digests) in load(os.path.join(work, 'blocks'), {}).items():
        try: st = os.lstat(name)
        except OSError: continue
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or st.st_size < MIN or st.st_blocks * 512 < st.st_size: continue
        if (st.st_size, st.st_mtime_ns) == (size, mtime) or not os.access(name, os.R_OK): continue
        out.write(name + b'\\0')
elif cmd == 'write':
    index = load(os.path.join(work, 'blocks'), {})
    with open(os.path.join(work, 'delta-plan'), 'rb') as f:
        planned = [n for n in f.read().split(b'\\0') if n]
    listing = open(os.path.join(work, 'delta-listing'), 'wb')
    bases = open(os.path.join(work, 'delta-base'), 'wb')
    blocks = open(os.path.join(work, 'blocks-delta'), 'wb')
    tar = tarfile.open(fileobj=sys.stdout.buffer, mode='w|', format=tarfile.PAX_FORMAT)
    def member(name, data):
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o600, 0
        tar.addfile(info, io.BytesIO(data))
    for k, name in enumerate(planned):
        size0, mtime0, b2_0, old = index[name]
        try: f = open(name, 'rb')
        except OSError: continue
        with f:
            st = os.fstat(f.fileno())
            whole, digests, run, at, n = hashlib.blake2b(digest_size=32), bytearray(), bytearray(), 0, 0
            while True:
                block = f.read(BLOCK)
                if not block: break
                whole.update(block)
                d = hashlib.blake2b(block, digest_size=16).digest()
                digests += d
                same = old[n * 16:(n + 1) * 16] == d
                if same or len(run) >= RUN:
                    if run: member('%s/%d/%d' % (DIR, k, at), bytes(run))
                    run = bytearray()
                if not same:
                    if not run: at = n * BLOCK
                    run += block
                n += 1
            if run: member('%s/%d/%d' % (DIR, k, at), bytes(run))
            size = f.tell()
        b2 = whole.hexdigest()
        mtime = '%d.%09d' % divmod(st.st_mtime_ns, 10 ** 9)
        member('%s/%d/meta' % (DIR, k), json.dumps({'path': os.fsdecode(name), 'size': size, 'mode': stat.S_IMODE(st.st_mode), 'mtime_ns': st.st_mtime_ns}).encode())
        listing.write(b'\\0'.join((b'0', name, b'%d' % stat.S_IMODE(st.st_mode), b'%d' % st.st_uid, b'%d' % st.st_gid, b'%d' % size, mtime.encode(), b'', b2.encode(), b'-')) + b'\\0')
        bases.write(name + b'\\0' + b2_0.encode() + b'\\0')
        blocks.write(line(name, size, st.st_mtime_ns, b2, bytes(digests)) if size >= MIN else name.hex().encode() + b'\\n')
    tar.close()
    for f in (listing, bases, blocks): f.close()
elif cmd == 'merge':
    index = {}
    for part in ('blocks', 'blocks-archived', 'blocks-delta'):
        load(os.path.join(work, part), index)
    with open(os.path.join(work, 'blocks.new'), 'wb') as f:
        for name, (size, mtime, b2, digests) in index.items():
            f.write(line(name, size, mtime, b2, digests))
    os.replace(os.path.join(work, 'blocks.new'), os.path.join(work, 'blocks'))
elif cmd == 'patch':
    root = os.path.join(work, DIR)
    for k in sorted(os.listdir(root), key=int):
        d = os.path.join(root, k)
        with open(os.path.join(d, 'meta'), 'rb') as f:
            meta = json.load(f)
        target = os.path.join(work, meta['path'])
        os.chmod(target, stat.S_IMODE(os.lstat(target).st_mode) | stat.S_IWUSR)
        with open(target, 'r+b') as f:
            for part in os.listdir(d):
                if part == 'meta': continue
                with open(os.path.join(d, part), 'rb') as src:
                    f.seek(int(part))
                    f.write(src.read())
            f.truncate(meta['size'])
        os.chmod(target, meta['mode'])
        os.utime(target, ns=(meta['mtime_ns'], meta['mtime_ns']), follow_symlinks=False)
    for base, dirs, files in os.walk(root, topdown=False):
        for name in files: os.unlink(os.path.join(base, name))
        for name in dirs: os.rmdir(os.path.join(base, name))
    os.rmdir(root)
`.trim();

/**
 * The manifest entries after the deltas: each file that went as blocks must have come into `entries`
 * unchanged from the parent (tar left it out) with exactly the content the delta was made against;
 * its entry is then the one the writer listed. Throws ManifestMergeError otherwise (the attempt fails
 * and the next one is a full backup).
 */
export function applyDeltas(entries: ManifestEntry[], parent: readonly ManifestEntry[], deltaListing: Buffer, deltaBase: Buffer): { entries: ManifestEntry[]; count: number } {
  if (deltaListing.length === 0) return { entries, count: 0 };
  const members = parseArchiveListing(deltaListing);
  const fields = deltaBase.toString('utf8').split('\0');
  const bases = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) bases.set(fields[i]!, fields[i + 1]!);
  const parentOf = new Map(parent.map((e) => [e.path, e]));
  const byPath = new Map(entries.map((e) => [e.path, e]));
  for (const m of members) {
    const before = parentOf.get(m.path);
    if (!before || byPath.get(m.path) !== before || before.type !== 'f' || before.b2 !== bases.get(m.path)) {
      throw new ManifestMergeError(`${JSON.stringify(m.path)} went as changed blocks against content its parent backup does not hold`);
    }
    byPath.set(m.path, { ...before, mode: (m.mode & 0o7777).toString(8), size: m.size, mtime: m.mtime, b2: m.b2, uid: m.uid, gid: m.gid });
  }
  return { entries: [...byPath.values()], count: members.length };
}

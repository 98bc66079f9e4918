/**
 * Proves how a backup's manifest is built from its archive's listing (activities/backups/archive.ts):
 * the lister's records parse (names with newlines, non-UTF-8 bytes kept as replacement characters,
 * dumpdirs); hard links take their leader's content and size; an incremental's manifest is its
 * parent's with the archive's changes, deletions and directory renames applied; an unchanged name the
 * parent does not have, a rename cycle and a device node are refused; and the canonical form the
 * restore check compares ignores owners but not hard-link structure.
 */
import { expect, test } from 'vitest';
import {
  canonicalDifferences, canonicalDigest, canonicalFromManifest, canonicalFromTree, ManifestMergeError, manifestEntries, normalizeMtime,
  parseArchiveListing, type ArchiveMember, type ManifestEntry,
} from '../../activities/backups/archive.ts';
import type { TreeEntry } from '../../activities/backups/tree.ts';

const hash = (c: string) => c.repeat(64);

function record(fields: (string | Buffer)[]): Buffer {
  return Buffer.concat(fields.flatMap((f) => [Buffer.isBuffer(f) ? f : Buffer.from(f), Buffer.alloc(1)]));
}

function dumpdir(items: string[]): string {
  return Buffer.concat(items.flatMap((i) => [Buffer.from(i), Buffer.alloc(1)]).concat(Buffer.alloc(1))).toString('hex');
}

function member(partial: Partial<ArchiveMember> & Pick<ArchiveMember, 'typeflag' | 'path'>): ArchiveMember {
  return { mode: 0o644, uid: 1000, gid: 1000, size: 0, mtime: '1.000000000', linkname: '', linknameBytes: 0, b2: '', dumpdir: null, ...partial };
}

test('the lister output parses: types, raw names, nanosecond times, dumpdirs', () => {
  const listing = Buffer.concat([
    record(['5', './d', '493', '1000', '1000', '0', '1700000000.5', '', '', dumpdir(['Ya', 'Nb', 'Dsub'])]),
    record(['0', './d/new\nline', '420', '4242', '4243', '3', '1700000000', '', hash('a'), '-']),
    record(['2', Buffer.from([0x2e, 0x2f, 0x64, 0x2f, 0xff]), '511', '0', '0', '0', '1700000000.123456789123', 'tärget', '', '-']),
  ]);
  const [dir, file, link] = parseArchiveListing(listing);
  expect(dir).toMatchObject({ typeflag: '5', path: './d', mode: 0o755, mtime: '1700000000.500000000', dumpdir: [{ code: 'Y', name: 'a' }, { code: 'N', name: 'b' }, { code: 'D', name: 'sub' }] });
  expect(file).toMatchObject({ typeflag: '0', path: './d/new\nline', uid: 4242, gid: 4243, size: 3, mtime: '1700000000.000000000', b2: hash('a'), dumpdir: null });
  expect(link).toMatchObject({ path: './d/\ufffd', linkname: 'tärget', linknameBytes: 7, mtime: '1700000000.123456789' });
  expect(() => parseArchiveListing(listing.subarray(0, listing.length - 3))).toThrow(/cut short/);
});

test('normalizeMtime gives nine fraction digits whatever the tool printed', () => {
  expect(normalizeMtime('12')).toBe('12.000000000');
  expect(normalizeMtime('12.5')).toBe('12.500000000');
  expect(normalizeMtime('1049522828.5555555550')).toBe('1049522828.555555555');
});

test('a full archive: every member an entry; hard links share their leader\'s content and size; devices are refused', () => {
  const entries = manifestEntries([
    member({ typeflag: '5', path: './t', mode: 0o1777 }),
    member({ typeflag: '0', path: './t/a', size: 6, b2: hash('a'), uid: 4242 }),
    member({ typeflag: '1', path: './t/h', linkname: './t/a' }),
    member({ typeflag: '2', path: './t/s', mode: 0o777, linkname: 'a', linknameBytes: 1 }),
    member({ typeflag: '6', path: './t/fifo' }),
  ]);
  expect(entries).toEqual([
    { path: './t', type: 'd', mode: '1777', size: null, mtime: '1.000000000', target: '', uid: 1000, gid: 1000 },
    { path: './t/a', type: 'f', mode: '644', size: 6, mtime: '1.000000000', target: '', b2: hash('a'), uid: 4242, gid: 1000 },
    { path: './t/h', type: 'f', mode: '644', size: 6, mtime: '1.000000000', target: '', link: './t/a', b2: hash('a'), uid: 1000, gid: 1000 },
    { path: './t/s', type: 'l', mode: '777', size: 1, mtime: '1.000000000', target: 'a', uid: 1000, gid: 1000 },
    { path: './t/fifo', type: 'p', mode: '644', size: 0, mtime: '1.000000000', target: '', uid: 1000, gid: 1000 },
  ]);
  expect(() => manifestEntries([member({ typeflag: '3', path: './t/dev' })])).toThrow(ManifestMergeError);
});

const parent: ManifestEntry[] = [
  { path: './t', type: 'd', mode: '755', size: null, mtime: '1.000000000', target: '', uid: 1, gid: 1 },
  { path: './t/keep', type: 'f', mode: '644', size: 1, mtime: '1.000000000', target: '', b2: hash('k'), uid: 1, gid: 1 },
  { path: './t/gone', type: 'f', mode: '644', size: 1, mtime: '1.000000000', target: '', b2: hash('g'), uid: 1, gid: 1 },
  { path: './t/old', type: 'd', mode: '755', size: null, mtime: '1.000000000', target: '', uid: 1, gid: 1 },
  { path: './t/old/in', type: 'f', mode: '600', size: 2, mtime: '1.000000000', target: '', b2: hash('i'), uid: 1, gid: 1 },
  { path: './t/old/ln', type: 'f', mode: '600', size: 2, mtime: '1.000000000', target: '', link: './t/old/in', b2: hash('i'), uid: 1, gid: 1 },
];

test('an incremental archive: unchanged entries come from the parent, renamed directories move, deleted names go', () => {
  const entries = manifestEntries([
    member({ typeflag: '5', path: './t', mtime: '2.000000000', dumpdir: [{ code: 'N', name: 'keep' }, { code: 'Y', name: 'new' }, { code: 'D', name: 'renamed' },
      { code: 'R', name: './t/old' }, { code: 'T', name: './t/renamed' }] }),
    member({ typeflag: '5', path: './t/renamed', mtime: '2.000000000', dumpdir: [{ code: 'N', name: 'in' }, { code: 'N', name: 'ln' }] }),
    member({ typeflag: '0', path: './t/new', size: 3, b2: hash('n') }),
  ], parent);
  const byPath = new Map(entries.map((e) => [e.path, e]));
  expect([...byPath.keys()].sort()).toEqual(['./t', './t/keep', './t/new', './t/renamed', './t/renamed/in', './t/renamed/ln']);
  expect(byPath.get('./t')!.mtime).toBe('2.000000000');
  expect(byPath.get('./t/keep')).toEqual(parent[1]);
  expect(byPath.get('./t/renamed/in')).toMatchObject({ mode: '600', b2: hash('i') });
  // The hard link moved with its leader.
  expect(byPath.get('./t/renamed/ln')).toMatchObject({ link: './t/renamed/in' });
});

test('an incremental that names an unchanged entry its parent lacks, or renames in a cycle, is refused (the next backup is full)', () => {
  expect(() => manifestEntries([member({ typeflag: '5', path: './t', dumpdir: [{ code: 'N', name: 'unknown' }] })], parent)).toThrow(ManifestMergeError);
  expect(() => manifestEntries([member({ typeflag: '5', path: './t', dumpdir: [{ code: 'X', name: 'tmp' }] })], parent)).toThrow(/cycle/);
  expect(() => manifestEntries([member({ typeflag: '5', path: './t' })], parent)).toThrow(/no dumpdir/);
});

function treeEntry(partial: Partial<TreeEntry> & Pick<TreeEntry, 'path' | 'type'>): TreeEntry {
  return { mode: '644', uid: 61001, gid: 61001, size: 0, mtime: '1.0000000000', nlink: 1, target: '', ...partial };
}

test('the restore check compares everything a restore reproduces, hard-link structure included, and not owners', () => {
  const manifest: ManifestEntry[] = [
    { path: './t', type: 'd', mode: '755', size: null, mtime: '1.000000000', target: '', uid: 0, gid: 0 },
    { path: './t/a', type: 'f', mode: '644', size: 1, mtime: '1.000000000', target: '', b2: hash('a'), uid: 4242, gid: 4243 },
    { path: './t/b', type: 'f', mode: '644', size: 1, mtime: '1.000000000', target: '', link: './t/a', b2: hash('a'), uid: 4242, gid: 4243 },
  ];
  const restored: TreeEntry[] = [
    treeEntry({ path: './t', type: 'd', mode: '755', size: null, nlink: 2 }),
    treeEntry({ path: './t/a', type: 'f', size: 1, nlink: 2, inode: '1:7', b2: hash('a') }),
    treeEntry({ path: './t/b', type: 'f', size: 1, nlink: 2, inode: '1:7', b2: hash('a') }),
  ];
  const expected = canonicalFromManifest(manifest);
  expect(canonicalDifferences(expected, canonicalFromTree(restored, { links: true }))).toEqual([]);
  expect(canonicalDigest(canonicalFromTree(restored, { links: true }))).toBe(canonicalDigest(expected));
  // Two copies instead of one file with two names: a difference.
  const unlinked = restored.map((e) => (e.path === './t/b' ? { ...e, inode: '1:8', nlink: 1 } : e.path === './t/a' ? { ...e, nlink: 1 } : e));
  expect(canonicalDifferences(expected, canonicalFromTree(unlinked, { links: true }))).toHaveLength(2);
  // A changed byte, a changed mode, a missing entry: each a difference.
  expect(canonicalDifferences(expected, canonicalFromTree(restored.map((e) => (e.path === './t/a' ? { ...e, b2: hash('z') } : e)), { links: true }))[0]).toMatch(/differs ".\/t\/a"/);
  expect(canonicalDifferences(expected, canonicalFromTree(restored.map((e) => (e.path === './t' ? { ...e, mode: '700' } : e)), { links: true }))[0]).toMatch(/differs ".\/t"/);
  expect(canonicalDifferences(expected, canonicalFromTree(restored.slice(0, 2), { links: true }))).toEqual(['differs "./t/a": expected {"path":"./t/a","type":"f","mode":"644","size":1,"mtime":"1.000000000","target":"","linkGroup":"./t/a","hash":"' + hash('a') + '"}, found {"path":"./t/a","type":"f","mode":"644","size":1,"mtime":"1.000000000","target":"","linkGroup":"","hash":"' + hash('a') + '"}', 'missing "./t/b"']);
});

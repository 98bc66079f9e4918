/**
 * Proves, logged in as an unprivileged account as production is: a hostile tree backed up over a real
 * sshd into MinIO and restored elsewhere is identical (type, mode, size, ns mtime, link target,
 * hardlink structure, contents, sparseness), owned by the restoring account, without exactly the
 * entries the account could not read or recreate (recorded as skipped), while entries of other users
 * it can read are kept; a restore in place over a tree holding other users' entries succeeds and says
 * what it could not remove; the record is completed only with the size and SHA-256 that storage
 * holds; the object is encrypted; progress is reported; manifests come from the archive with
 * BLAKE2b-256 hashes and older SHA-256 manifests still check; and a server with another host key than
 * the pinned one is refused; bulk streams over ssh2 (the fallback) round-trip too. The tree has a 1 GiB file.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { ErrorType } from '../../lib/errors.ts';
import { connectSsh, type BackupManifestV2, type BackupProgress } from '../../activities/backups/index.ts';
import { listRemoteTree, summarize } from '../../activities/backups/tree.ts';
import {
  allocatedBlocks, buildHostileTree, hostileTreeSkipped, openUploads, restoredByAccount, sh, startBackupWorld, treeListing, type BackupWorld,
} from '../support/backup-fixtures.ts';

// The hostile tree carries a 1 GiB file, the size the backup path must handle; BERTH_BACKUP_SMALL=1 shrinks it to 48 MiB for quick local runs.
const bigBytes = process.env.BERTH_BACKUP_SMALL === '1' ? 48 * 1024 ** 2 : 1024 ** 3;

let world: BackupWorld;
let owner = '';
beforeAll(async () => {
  world = await startBackupWorld('backup_roundtrip');
  owner = `${world.account.uid}:${world.account.gid}`;
  await buildHostileTree(path.join(world.dir, 'src'), bigBytes, owner);
});
afterAll(async () => {
  await world?.stop();
});

/** A small tree of its own (the account's), for tests about records and manifests rather than volume; returns its backup path. */
async function smallTree(name: string): Promise<string> {
  const dir = path.join(world.dir, name);
  await sh('mkdir -p "$1/d" && printf one > "$1/one.txt" && printf two > "$1/d/two.txt" && head -c 100000 /dev/urandom > "$1/d/big.bin" && chown -R "$2" "$1"', dir, owner);
  return dir.slice(1);
}

test('a hostile tree round-trips exactly, and the completed record matches what storage holds', async () => {
  const service = world.service();
  const progress: BackupProgress[] = [];
  const result = await service.backup({ userId: world.userId, ssh: world.sshd.target, onProgress: (p) => progress.push({ ...p }), progressIntervalMs: 0 });

  const row = await world.database.db.selectFrom('backups').selectAll().where('id', '=', result.backupId).executeTakeFirstOrThrow();
  expect(row.status).toBe('completed');
  expect(row.verifiedAt).toBeInstanceOf(Date);
  expect(row.kind).toBe('full');
  expect(row.encryptionKeyId).toBe('test-k1');
  // Read the object back ourselves: the record's size and SHA-256 are the stored object's.
  const object = Buffer.from(await (await world.s3.send(new GetObjectCommand({ Bucket: world.bucket, Key: row.objectKey }))).Body!.transformToByteArray());
  expect(row.sizeBytes).toBe(object.length);
  expect(row.sha256).toBe(createHash('sha256').update(object).digest('hex'));
  // Encrypted: no plaintext marker from the compressible log survives, and the header names the key.
  expect(object.includes(Buffer.from('compressible line of text'))).toBe(false);
  expect(object.subarray(0, 400).toString('latin1')).toContain('"keyId":"test-k1"');
  expect(await openUploads(world.s3, world.bucket, row.objectKey)).toEqual([]);

  const manifest = row.manifest as unknown as BackupManifestV2;
  const source = path.join(world.dir, 'src');
  expect(manifest.format).toBe(2);
  expect(manifest.fileCount).toBeGreaterThan(15);
  expect(manifest.encryption).toMatchObject({ keyId: 'test-k1' });
  expect(manifest.tools.tar).toMatch(/GNU tar/);
  // Left out, with the reason, exactly what the account cannot read or could not recreate.
  expect([...manifest.skipped].sort((a, b) => (a.path < b.path ? -1 : 1))).toEqual(hostileTreeSkipped.map((s) => ({ path: `.${source}/${s.path}`, reason: s.reason })).sort((a, b) => (a.path < b.path ? -1 : 1)));
  // Entries of other users that the account can read are in, their owners recorded.
  expect(manifest.entries.find((e) => e.path.endsWith('/foreign-readable'))).toMatchObject({ type: 'f', mode: '444', uid: 4242, gid: 4243 });
  expect(manifest.entries.find((e) => e.path.endsWith('/nested'))).toMatchObject({ type: 'd', uid: 2222, gid: 3333 });
  expect(manifest.notKept).toEqual(['owner', 'xattrs', 'acls']);
  // File contents are hashed with BLAKE2b-256 from the archive itself, and the hashes are the files'.
  expect(manifest.contentHash).toBe('blake2b-256');
  const big = manifest.entries.find((e) => e.type === 'f' && e.path.endsWith('/big.bin'))!;
  expect(big.b2).toBe((await sh('b2sum -l 256 < "$1/big.bin"', source)).split(' ')[0]);
  expect(manifest.entries.filter((e) => e.type === 'f').every((e) => /^[0-9a-f]{64}$/.test(e.b2 ?? ''))).toBe(true);
  expect(progress.some((p) => p.phase === 'streaming' && p.bytesDone > 0 && (p.bytesEstimate ?? 0) > bigBytes)).toBe(true);
  expect(progress.at(-1)!.phase).toBe('verifying');

  const restoreRoot = path.join(world.dir, 'restored');
  const restored = await service.restore({ backupId: result.backupId, ssh: world.sshd.target, root: restoreRoot });
  expect(restored.chain).toEqual([result.backupId]);
  expect(restored.leftovers).toEqual([]);

  const copy = path.join(restoreRoot, source.slice(1));
  const [expected, actual] = await Promise.all([treeListing(source), treeListing(copy)]);
  expect(expected.length).toBeGreaterThan(60);
  // Everything but what was left out, owned by the account that restored it.
  expect(actual).toEqual(restoredByAccount(expected, hostileTreeSkipped.map((s) => s.path), owner));
  // The sparse file stayed sparse (64 MiB apparent, a few KiB allocated).
  expect(await allocatedBlocks(path.join(copy, 'sparse.bin'))).toBeLessThan(1024);
  // No staging directory is left behind.
  expect((await treeListing(restoreRoot)).filter((l) => l.includes('.berth-restore-'))).toEqual([]);
});

test('a restore in place, as the account, over a tree holding entries of other users succeeds and names what it could not remove', async () => {
  const dir = path.join(world.dir, 'in-place');
  // As a tool run with sudo leaves them: a readable file of another user (the reported case), a
  // directory of another user the account cannot enter, and a read-only directory of the account's.
  await sh(`mkdir -p "$1/ro" && printf 'mine\\n' > "$1/mine.txt" && printf 'data\\n' > "$1/ro/data" && chmod 0555 "$1/ro" && chown -R "$2" "$1"
    printf 'foreign\\n' > "$1/x" && chown 4242:4243 "$1/x" && chmod 0444 "$1/x"
    mkdir "$1/theirs" && printf 'inside\\n' > "$1/theirs/inside" && chown -R 4242:4243 "$1/theirs" && chmod 0700 "$1/theirs"`, dir, owner);
  const service = world.service({ paths: [dir.slice(1)] });
  const backup = await service.backup({ userId: world.userId, ssh: world.sshd.target });
  const before = await treeListing(dir);
  expect((backup.manifest as BackupManifestV2).skipped).toEqual([{ path: `.${dir}/theirs`, reason: 'unreadable' }]);

  const restored = await service.restore({ backupId: backup.backupId, ssh: world.sshd.target });
  expect(await treeListing(dir)).toEqual(restoredByAccount(before, ['theirs'], owner));
  // What the account could not delete stays beside the restored tree, and the result says where.
  expect(restored.leftovers).toHaveLength(1);
  expect(restored.leftovers[0]).toMatch(new RegExp(`^\\.${path.dirname(dir)}/\\.in-place\\.berth-replaced-[0-9a-f-]{36}$`));
  expect(await sh('cat "$1/theirs/inside"', path.join('/', restored.leftovers[0]!))).toBe('inside\n');
});

test('a manifest from before BLAKE2b (SHA-256 hashes, no contentHash) is still checked on restore, with SHA-256', async () => {
  const service = world.service({ paths: [await smallTree('old-manifest')] });
  const result = await service.backup({ userId: world.userId, ssh: world.sshd.target });
  expect(result.manifest.contentHash).toBe('blake2b-256');
  // Rewrite the record's manifest the way the first format wrote it: SHA-256 per file, digest over those.
  const client = await connectSsh(world.sshd.target);
  const old = await listRemoteTree(client, '/', result.manifest.paths, 'sha256').finally(() => client.end());
  expect(old.entries.filter((e) => e.type === 'f').every((e) => /^[0-9a-f]{64}$/.test(e.sha256 ?? '') && e.b2 === undefined)).toBe(true);
  const { contentHash: _dropped, entries: _entries, skipped: _skipped, warnings: _warnings, notKept: _notKept, ...rest } = result.manifest as BackupManifestV2;
  const write = (manifest: object) => world.database.db.updateTable('backups').set({ manifest: JSON.stringify(manifest) }).where('id', '=', result.backupId).execute();

  await write({ ...rest, format: 1, entries: old.entries, treeDigest: old.digest });
  const restoreRoot = path.join(world.dir, 'restored-old-manifest');
  await expect(service.restore({ backupId: result.backupId, ssh: world.sshd.target, root: restoreRoot })).resolves.toMatchObject({ treeDigest: old.digest });

  // A changed hash in that manifest makes the same restore refuse: the SHA-256 comparison is real.
  const tampered = old.entries.map((e) => (e.path.endsWith('/big.bin') ? { ...e, sha256: '0'.repeat(64) } : e));
  await write({ ...rest, format: 1, entries: tampered, treeDigest: summarize(tampered).digest });
  await expect(service.restore({ backupId: result.backupId, ssh: world.sshd.target, root: restoreRoot }))
    .rejects.toMatchObject({ type: ErrorType.BackupCorrupt, message: expect.stringMatching(/big\.bin/) });
});

test('a retry with the same backup id returns the completed backup instead of making another', async () => {
  const service = world.service({ paths: [await smallTree('retry')] });
  const backupId = crypto.randomUUID();
  const first = await service.backup({ userId: world.userId, ssh: world.sshd.target, backupId });
  const again = await service.backup({ userId: world.userId, ssh: world.sshd.target, backupId });
  expect(again.sha256).toBe(first.sha256);
  expect(again.objectKey).toBe(first.objectKey);
});

test('bulk streams over ssh2 (where the worker has no OpenSSH client) back up and restore the same', async () => {
  const source = await smallTree('over-ssh2');
  const service = world.service({ paths: [source], transport: 'ssh2' });
  const done = await service.backup({ userId: world.userId, ssh: world.sshd.target });
  const root = path.join(world.dir, 'restored-over-ssh2');
  await service.restore({ backupId: done.backupId, ssh: world.sshd.target, root });
  expect(await treeListing(path.join(root, source))).toEqual(await treeListing(`/${source}`));
});

test('a server presenting a host key other than the pinned one is refused (HostKeyMismatch)', async () => {
  const other = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4 someone-else';
  await expect(connectSsh({ ...world.sshd.target, hostKey: other })).rejects.toMatchObject({ type: ErrorType.HostKeyMismatch });
  const client = await connectSsh(world.sshd.target);
  client.end();
});

/**
 * Proves incrementals and retention: after changing ~1% of a tree (edits, a new file, a deletion,
 * a rename, a mode change, a file added in a read-only directory) the next backup stores at most 5%
 * of the full backup's size, the chain full → incremental → incremental (the second renames a
 * directory) restores exactly — deletions included, as the unprivileged account, whose restore must
 * write into directories an earlier link made read-only — and each incremental's manifest (its
 * parent's, updated from the archive) checks out; and prune deletes expired backups from storage and
 * then the database, but never a backup a kept incremental needs nor a customer's newest verified
 * backup while their retention lasts.
 */
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { BackupManifestV2 } from '../../activities/backups/index.ts';
import { ErrorType } from '../../lib/errors.ts';
import { objectKeys, sh, startBackupWorld, treeListing, type BackupWorld } from '../support/backup-fixtures.ts';

let world: BackupWorld;
let source = '';
beforeAll(async () => {
  world = await startBackupWorld('backup_incremental');
  source = path.join(world.dir, 'src');
  // 200 incompressible files of 128 KiB (25 MiB): compression cannot hide what was sent.
  await sh('mkdir -p "$1" && cd "$1" && for d in a b c d; do mkdir -p $d; for i in $(seq 1 50); do head -c 131072 /dev/urandom > $d/f$i.bin; done; done'
    + ' && mkdir ro && printf "kept\\n" > ro/kept.txt && chmod 0555 ro && chown -R "$2" .', source, `${world.account.uid}:${world.account.gid}`);
});
afterAll(async () => {
  await world?.stop();
});

const restoreAndList = async (backupId: string, name: string) => {
  const root = path.join(world.dir, name);
  await world.service().restore({ backupId, ssh: world.sshd.target, root });
  return treeListing(path.join(root, source.slice(1)));
};

test('after a 1% change an incremental uploads ≤ 5% of the full backup, and the chain restores exactly', async () => {
  const service = world.service();
  const full = await service.backup({ userId: world.userId, ssh: world.sshd.target, incremental: true });
  expect(full.kind).toBe('full');
  const atFull = await treeListing(source);

  // ~1% of 25 MiB: two files rewritten, one added, one deleted, one renamed, one chmod.
  await sh('cd "$1" && head -c 131072 /dev/urandom > a/f1.bin && head -c 131072 /dev/urandom > b/f2.bin && head -c 65536 /dev/urandom > c/new.bin'
    + ' && rm d/f3.bin && mv d/f4.bin d/f4-renamed.bin && chmod 600 a/f5.bin'
    + ' && chmod 0755 ro && printf "added\\n" > ro/added.txt && chmod 0555 ro && chown "$2" c/new.bin ro/added.txt', source, `${world.account.uid}:${world.account.gid}`);
  const inc1 = await service.backup({ userId: world.userId, ssh: world.sshd.target, incremental: true });
  expect(inc1.kind).toBe('incremental');
  expect(inc1.parentId).toBe(full.backupId);
  expect(inc1.sizeBytes).toBeLessThanOrEqual(0.05 * full.sizeBytes);
  const atInc1 = await treeListing(source);

  await sh('cd "$1" && rm -r c && mkdir -p e/empty && head -c 1000 /dev/urandom > e/small.bin && mv b b-renamed && chown -R "$2" e', source, `${world.account.uid}:${world.account.gid}`);
  const inc2 = await service.backup({ userId: world.userId, ssh: world.sshd.target, incremental: true });
  expect(inc2.kind).toBe('incremental');
  expect(inc2.parentId).toBe(inc1.backupId);
  const atInc2 = await treeListing(source);

  expect(await restoreAndList(inc2.backupId, 'r-inc2')).toEqual(atInc2);
  expect(await restoreAndList(inc1.backupId, 'r-inc1')).toEqual(atInc1);
  expect(await restoreAndList(full.backupId, 'r-full')).toEqual(atFull);

  // Not asking for an incremental gives a full backup, which starts a new chain.
  const full2 = await service.backup({ userId: world.userId, ssh: world.sshd.target });
  expect(full2.kind).toBe('full');
  const inc3 = await service.backup({ userId: world.userId, ssh: world.sshd.target, incremental: true });
  expect(inc3.parentId).toBe(full2.backupId);
});

test('prune keeps what kept backups need and the newest verified one; deletes the rest from storage, then the database', async () => {
  const db = world.database.db;
  const service = world.service();
  const rows = await db.selectFrom('backups').selectAll().where('userId', '=', world.userId).orderBy('createdAt').execute();
  const [full, inc1, inc2, full2, inc3] = rows;
  const past = new Date(Date.now() - 86_400_000);
  const future = new Date(Date.now() + 86_400_000);
  const expire = (ids: string[], at: Date) => db.updateTable('backups').set({ expiresAt: at }).where('id', 'in', ids).execute();
  const status = async () => Object.fromEntries((await db.selectFrom('backups').select(['id', 'status']).where('userId', '=', world.userId).execute()).map((r) => [r.id, r.status]));

  // First chain expired except its last incremental: everything it builds on stays.
  await expire([full!.id, inc1!.id, full2!.id, inc3!.id], past);
  await expire([inc2!.id], future);
  expect((await service.prune()).deleted).toEqual([]);

  // Everything expired, but the customer is inside retention: the newest verified backup (inc3) and its full stay.
  await expire([inc2!.id], past);
  const pruned = await service.prune();
  expect(new Set(pruned.deleted)).toEqual(new Set([full!.id, inc1!.id, inc2!.id]));
  // Incrementals went before the full backup they build on.
  expect(pruned.deleted.indexOf(inc1!.id)).toBeLessThan(pruned.deleted.indexOf(full!.id));
  const after = await status();
  expect(after[full!.id]).toBe('deleted');
  expect(after[inc3!.id]).toBe('completed');
  expect(after[full2!.id]).toBe('completed');
  const keys = await objectKeys(world.s3, world.bucket, world.keyPrefix);
  expect(keys.filter((k) => k.includes(full!.id) || k.includes(inc1!.id) || k.includes(inc2!.id))).toEqual([]);
  expect(keys.filter((k) => k.includes(inc3!.id) || k.includes(full2!.id))).toHaveLength(2);

  // Retention over (customer purged): the rest goes too.
  expect(new Set((await service.prune({ retentionOverFor: [world.userId] })).deleted)).toEqual(new Set([full2!.id, inc3!.id]));
  expect(await objectKeys(world.s3, world.bucket, `${world.keyPrefix}${world.userId}/`)).toEqual([]);
});

test('a large file changed in place or appended to goes as its changed blocks; the chain restores exactly; a block index that does not match the parent fails the attempt', async () => {
  // Its own tree, state directory and customer, so the chain above is left alone.
  const user = await world.database.db.insertInto('users').values({ email: `deltas-${Date.now()}@example.test`, passwordHash: 'x', name: 'deltas' })
    .returning('id').executeTakeFirstOrThrow();
  const src = path.join(world.dir, 'src-deltas');
  const owner = `${world.account.uid}:${world.account.gid}`;
  await sh('mkdir -p "$1/db" && cd "$1" && head -c 8M /dev/urandom > db/big.sqlite && head -c 1536K /dev/urandom | base64 > app.log && printf "x\\n" > small.txt && chown -R "$2" .', src, owner);
  const service = world.service({ paths: [src.slice(1)], stateDir: path.join(world.dir, 'state-deltas') });
  const backup = () => service.backup({ userId: user.id, ssh: world.sshd.target, incremental: true });
  const full = await backup();
  const atFull = await treeListing(src);

  // 1 MiB rewritten in place inside 8 MiB, 100 KiB appended to a 2 MiB log, a mode change.
  await sh('cd "$1" && head -c 1M /dev/urandom | dd of=db/big.sqlite bs=64K seek=48 conv=notrunc status=none && head -c 75K /dev/urandom | base64 >> app.log && chmod 600 db/big.sqlite', src);
  const inc1 = await backup();
  expect(inc1.kind).toBe('incremental');
  expect((inc1.manifest as BackupManifestV2).deltas).toBe(2);
  // Whole files would be > 8 MiB; the changed blocks are ~1.2 MiB.
  expect(inc1.sizeBytes).toBeLessThan(1.6 * 1024 * 1024);
  const atInc1 = await treeListing(src);

  // Shrunk and rewritten at its start; the log made read-only after an append.
  await sh('cd "$1" && truncate -s 5M db/big.sqlite && head -c 64K /dev/urandom | dd of=db/big.sqlite conv=notrunc status=none && printf "more\\n" >> app.log && chmod 444 app.log', src);
  const inc2 = await backup();
  expect(inc2.parentId).toBe(inc1.backupId);
  expect((inc2.manifest as BackupManifestV2).deltas).toBe(2);
  expect(inc2.sizeBytes).toBeLessThan(256 * 1024);
  const atInc2 = await treeListing(src);

  const restored = async (backupId: string, name: string) => {
    const root = path.join(world.dir, name);
    await service.restore({ backupId, ssh: world.sshd.target, root });
    return treeListing(path.join(root, src.slice(1)));
  };
  expect(await restored(inc2.backupId, 'rd-inc2')).toEqual(atInc2);
  expect(await restored(inc1.backupId, 'rd-inc1')).toEqual(atInc1);
  expect(await restored(full.backupId, 'rd-full')).toEqual(atFull);

  // An index that describes other content than the parent holds (here: forged digests) is caught
  // before the backup counts, and the next attempt is a full backup.
  await sh('cd "$1" && f=blocks-"$2" && awk -F"\\t" -v OFS="\\t" \'{ if (NF > 1) $4 = "00"; print }\' "$f" > x && mv x "$f" && chown "$3" "$f"',
    path.join(world.dir, 'state-deltas'), inc2.backupId, owner);
  await sh('cd "$1" && head -c 64K /dev/urandom | dd of=db/big.sqlite bs=64K seek=10 conv=notrunc status=none', src);
  await expect(backup()).rejects.toMatchObject({ type: ErrorType.Transient, message: expect.stringContaining('changed blocks') });
  expect((await backup()).kind).toBe('full');
});

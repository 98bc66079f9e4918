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

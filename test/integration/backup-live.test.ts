/**
 * Proves that a backup of a live tree is consistent: while a writer keeps appending to a large file
 * (and creating and deleting small ones) during the whole backup — archiving, verification and the
 * manifest — the backup completes (tar's "file changed as we read it" is recorded, not fatal), the
 * manifest describes exactly what was archived, and the restore passes its check; the restored log
 * is a prefix of the live one, as an append-only file read at one moment must be. The same holds for
 * an incremental backup taken while the writer still runs.
 */
import { appendFileSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { BackupManifestV2 } from '../../activities/backups/index.ts';
import { sh, startBackupWorld, type BackupWorld } from '../support/backup-fixtures.ts';

let world: BackupWorld;
let source = '';
beforeAll(async () => {
  world = await startBackupWorld('backup_live');
  source = path.join(world.dir, 'src');
  // A 64 MiB log takes tar a while to read: appends land while it does.
  await sh('mkdir -p "$1/sessions" && head -c 48M /dev/urandom | base64 -w 100 > "$1/log.jsonl" && head -c 8M /dev/urandom > "$1/blob.bin"'
    + ' && for i in $(seq 1 20); do printf "{\\"s\\":%d}\\n" $i > "$1/sessions/s$i.json"; done && chown -R "$2" "$1"', source, `${world.account.uid}:${world.account.gid}`);
});
afterAll(async () => {
  await world?.stop();
});

/** Appends a line every 2 ms and churns session files, until stop(); returns how many lines it wrote. */
function startWriter(): { stop(): number } {
  let lines = 0;
  const timer = setInterval(() => {
    appendFileSync(path.join(source, 'log.jsonl'), `${JSON.stringify({ n: lines, at: Date.now() })}\n`);
    lines++;
    if (lines % 25 === 0) {
      writeFileSync(path.join(source, 'sessions', `live-${lines}.json`), `{"n":${lines}}\n`);
      rmSync(path.join(source, 'sessions', `live-${lines - 50}.json`), { force: true });
    }
  }, 2);
  return {
    stop() {
      clearInterval(timer);
      return lines;
    },
  };
}

async function restoredLog(backupId: string, name: string): Promise<Buffer> {
  const root = path.join(world.dir, name);
  await world.service().restore({ backupId, ssh: world.sshd.target, root });
  return readFileSync(path.join(root, source.slice(1), 'log.jsonl'));
}

test('a full backup taken while a writer appends completes, records what changed, and restores exactly what was archived', async () => {
  const writer = startWriter();
  let written: number;
  let result;
  try {
    result = await world.service().backup({ userId: world.userId, ssh: world.sshd.target, incremental: true });
  } finally {
    written = writer.stop();
  }
  expect(written).toBeGreaterThan(50);
  const manifest = result.manifest as BackupManifestV2;
  expect(manifest.kind).toBe('full');
  // tar saw the log change under it and said so; the backup keeps the log as it was archived.
  expect(manifest.warnings.join('\n')).toMatch(/log\.jsonl: file changed as we read it/);
  const log = manifest.entries.find((e) => e.path.endsWith('/log.jsonl'))!;

  const restored = await restoredLog(result.backupId, 'restored-full');
  expect(restored.length).toBe(log.size);
  const live = readFileSync(path.join(source, 'log.jsonl'));
  expect(live.length).toBeGreaterThan(restored.length);
  expect(live.subarray(0, restored.length).equals(restored)).toBe(true);
});

test('an incremental backup taken while the writer still runs completes and its chain restores', async () => {
  const writer = startWriter();
  let result;
  try {
    result = await world.service().backup({ userId: world.userId, ssh: world.sshd.target, incremental: true });
  } finally {
    writer.stop();
  }
  expect(result.kind).toBe('incremental');
  // The unchanged blob came from the parent's manifest, the log from this archive.
  const manifest = result.manifest as BackupManifestV2;
  expect(manifest.entries.find((e) => e.path.endsWith('/blob.bin'))).toBeTruthy();
  const log = manifest.entries.find((e) => e.path.endsWith('/log.jsonl'))!;

  const restored = await restoredLog(result.backupId, 'restored-incremental');
  expect(restored.length).toBe(log.size);
  const live = readFileSync(path.join(source, 'log.jsonl'));
  expect(live.subarray(0, restored.length).equals(restored)).toBe(true);
});

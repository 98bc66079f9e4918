/**
 * Proves: what a customer's server writes cannot fill the worker's memory. The customer controls
 * their server, shell startup files included; these sshds play such a server with a ForceCommand
 * that prints 300 MB before every command, or a `du` that claims 9 TB. Every command's output is
 * capped, and the server's size estimate cannot size the upload's buffers beyond a bound.
 */
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Client } from 'ssh2';
import { connectSsh } from '../../activities/backups/index.ts';
import { mustRun } from '../../activities/backups/ssh.ts';
import { sshExec } from '../../activities/cloud/ssh.ts';
import { startBackupWorld, type BackupWorld } from '../support/backup-fixtures.ts';

/** Runs `work` while sampling this process's memory; returns the peak growth of RSS and of ArrayBuffers, in MB. */
async function peakGrowth(work: () => Promise<unknown>): Promise<{ rssMb: number; buffersMb: number; outcome: unknown }> {
  globalThis.gc?.();
  const base = process.memoryUsage();
  let rss = 0;
  let buffers = 0;
  const sample = () => {
    const m = process.memoryUsage();
    rss = Math.max(rss, m.rss - base.rss);
    buffers = Math.max(buffers, m.arrayBuffers - base.arrayBuffers);
  };
  const timer = setInterval(sample, 10);
  const outcome = await work().then((v) => v, (err: unknown) => err);
  sample();
  clearInterval(timer);
  return { rssMb: rss / 1e6, buffersMb: buffers / 1e6, outcome };
}

const flood = 'head -c 300000000 /dev/zero | tr "\\000" x';

describe('a server whose shell prints 300 MB before every command', () => {
  let world: BackupWorld;
  let client: Client;
  beforeAll(async () => {
    world = await startBackupWorld('hostile-flood', { sshdConfig: [`ForceCommand /bin/sh -c '${flood}; exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"'`] });
    client = await connectSsh(world.sshd.target);
  });
  afterAll(async () => {
    client?.end();
    await world?.stop();
  });

  test('a command\'s output is cut off at its limit and the command fails, in bounded memory', async () => {
    const backup = await peakGrowth(() => mustRun(client, 'echo hello', 'a small command'));
    expect(String(backup.outcome)).toMatch(/wrote more than 1048576 bytes/);
    expect(backup.rssMb).toBeLessThan(100);
    const provisioning = await peakGrowth(() => sshExec(client, 'echo hello'));
    expect(String(provisioning.outcome)).toMatch(/wrote more than 1048576 bytes/);
    expect(provisioning.rssMb).toBeLessThan(100);
  });

  test('a backup of it fails as Transient (the server stays, the workflow keeps trying) without filling memory', async () => {
    await mkdir(path.join(world.dir, 'src'), { recursive: true });
    await writeFile(path.join(world.dir, 'src', 'a.txt'), 'data');
    const run = await peakGrowth(() => world.service().backup({ userId: world.userId, ssh: world.sshd.target }));
    expect((run.outcome as { type?: string }).type).toBe('Transient');
    expect(String(run.outcome)).toMatch(/wrote more than/);
    expect(run.rssMb).toBeLessThan(150);
  });
});

describe('a server whose `du` claims 9 TB', () => {
  let world: BackupWorld;
  let bin = '';
  beforeAll(async () => {
    bin = await mkdtemp(path.join(tmpdir(), 'berth-hostile-du-'));
    await writeFile(path.join(bin, 'du'), '#!/bin/sh\necho "9000000000000 total"\n');
    await chmod(path.join(bin, 'du'), 0o755);
    world = await startBackupWorld('hostile-du', { sshdConfig: [`ForceCommand /bin/sh -c 'PATH=${bin}:$PATH; export PATH; exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"'`] });
    await mkdir(path.join(world.dir, 'src'), { recursive: true });
    await writeFile(path.join(world.dir, 'src', 'a.txt'), 'small');
  });
  afterAll(async () => {
    await world?.stop();
    if (bin) await rm(bin, { recursive: true, force: true });
  });

  test('the claim cannot size the upload\'s buffers past their bound: the backup completes in bounded memory', async () => {
    const run = await peakGrowth(() => world.service().backup({ userId: world.userId, ssh: world.sshd.target }));
    expect(run.outcome).toMatchObject({ kind: 'full' });
    // Three part buffers of at most 64 MiB each, allocated up front; never a part sized from 9 TB / 9000 (≈ 1 GB).
    expect(run.buffersMb).toBeLessThan(3 * 64 * 1.05 + 20);
  });
});

/**
 * How a backup's manifest (metadata and a content hash of every file) is best obtained on the
 * server, measured over a real local sshd logged in as the unprivileged account, on two trees: the
 * assistant-like tree of bench/backup.ts (BENCH_GIB, default 1) and BENCH_FILES small files (default
 * 10,000). For each, on a warm page cache:
 *
 *   tar alone          tar -c PATHS | cat > /dev/null                (what archiving costs anyway)
 *   second walk        tar alone, then find + b2sum over the tree     (the manifest before; not consistent for a live tree)
 *   tee + --to-command tar -c | tee >(tar -x --to-command='b2sum')    (GNU tar runs one command per file)
 *   tee + tarfile      tar -c | tee >(python3 archive lister)         (one process reads the archive: what Berth runs)
 *
 * Wall seconds and server CPU seconds (bash's `time`: user + sys of everything it ran). Results go to
 * docs/benchmarks.md ("Backup manifest") by hand, with the machine they ran on.
 *
 *   node bench/manifest.ts
 */
import { execFile } from 'node:child_process';
import { chown, mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Client } from 'ssh2';
import { ARCHIVE_LISTER_PY } from '../activities/backups/archive.ts';
import { connectSsh, mustRun, shq } from '../activities/backups/ssh.ts';
import { listRemoteTree } from '../activities/backups/tree.ts';
import { startSshd } from '../test/support/sshd.ts';
import { makeSmallFiles, makeTree } from './tree.ts';

const run = promisify(execFile);

/** Runs a bash script on the server (arguments $1, $2...) and returns bash's own timing of it, children included. */
async function timed(client: Client, script: string, ...args: string[]): Promise<{ wall: number; cpu: number }> {
  const out = await mustRun(client, `bash -c ${shq(`TIMEFORMAT='berth-time %R %U %S'; time { ${script} ; } >/dev/null 2>/dev/null`)} bench ${args.map(shq).join(' ')} 2>&1`, 'timed command');
  const m = /berth-time ([\d.]+) ([\d.]+) ([\d.]+)/.exec(out.toString());
  if (!m) throw new Error(`no timing in ${JSON.stringify(out.toString())}`);
  return { wall: Number(m[1]), cpu: Number(m[2]) + Number(m[3]) };
}

/** tar's stream to /dev/null and, through a fifo (as the backup script does), to `consumer`, which is waited for. */
const teeInto = (tar: string, consumer: string) =>
  `d=$(mktemp -d) && mkfifo "$d/f" && { ${consumer} < "$d/f" > /dev/null & c=$!; } && ${tar} | tee "$d/f" > /dev/null; wait "$c"; rm -rf "$d"`;

async function measure(client: Client, root: string, rel: string): Promise<Record<string, { wall: number; cpu: number }>> {
  const tar = `cd "$1" && tar --create --file=- --format=posix --sparse --numeric-owner -- "./$2"`;
  // tar reads nothing when it writes to /dev/null itself: it writes to a pipe here, as in a backup.
  const archive = `${tar} | cat > /dev/null`;
  // Warm the page cache.
  await timed(client, archive, root, rel);
  const results: Record<string, { wall: number; cpu: number }> = {};
  results['tar alone'] = await timed(client, archive, root, rel);
  // The second walk as the backup ran it (find and b2sum on parallel channels) for the wall time; its
  // CPU, which bash on one channel cannot see, from the same work run serially.
  const started = performance.now();
  const archived = await timed(client, archive, root, rel);
  await listRemoteTree(client, root, [rel], 'blake2b-256');
  const wall = (performance.now() - started) / 1000;
  const walk = await timed(client, `cd "$1" && find "./$2" -printf '%y %m %U %G %s %T@ %n %l %p\\0' > /dev/null && find "./$2" -type f -print0 | xargs -0 -r b2sum -l 256 -z > /dev/null`, root, rel);
  results['second walk'] = { wall, cpu: archived.cpu + walk.cpu };
  results['tee + --to-command'] = await timed(client, teeInto(tar, `tar --extract --file=- --to-command='printf "%s\\0" "$TAR_FILENAME"; b2sum -l 256'`), root, rel);
  results['tee + tarfile'] = await timed(client, teeInto(tar, 'python3 -c "$3"'), root, rel, ARCHIVE_LISTER_PY);
  return results;
}

async function main(): Promise<void> {
  const gib = Number(process.env.BENCH_GIB ?? '1');
  const files = Number(process.env.BENCH_FILES ?? '10000');
  const dir = await mkdtemp(path.join(tmpdir(), 'berth-bench-manifest-'));
  const sshd = await startSshd();
  try {
    console.log(`making a ${gib} GiB tree and ${files} small files...`);
    await makeTree(path.join(dir, 'tree'), gib * 1024 ** 3);
    await makeSmallFiles(path.join(dir, 'small'), files);
    await run('chown', ['-R', `${sshd.account.uid}:${sshd.account.gid}`, dir]);
    await chown(dir, sshd.account.uid, sshd.account.gid);
    const client = await connectSsh(sshd.target);
    const loadBefore = loadavg();
    const results = { [`${gib} GiB assistant-like tree`]: await measure(client, dir, 'tree'), [`${files} small files`]: await measure(client, dir, 'small') };
    client.end();
    console.log(`\nmachine: ${cpus().length} × ${cpus()[0]?.model}; load average before ${loadBefore.map((l) => l.toFixed(2)).join(' ')}, after ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    console.log('| tree | method | wall s | server CPU s |');
    console.log('|---|---|---|---|');
    for (const [tree, byMethod] of Object.entries(results)) {
      for (const [method, r] of Object.entries(byMethod)) console.log(`| ${tree} | ${method} | ${r.wall.toFixed(1)} | ${r.cpu.toFixed(1)} |`);
    }
  } finally {
    await sshd.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();

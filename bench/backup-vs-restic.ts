/**
 * Berth's backups side by side with restic: the same generated tree, the same MinIO, alternating runs.
 *
 *   node bench/backup-vs-restic.ts        # BENCH_GIB=1, BENCH_ROUNDS=3
 *
 * restic is what a customer would run instead: encrypted, deduplicated, checked backups to S3. It runs
 * where the files are (the customer's server) and talks to MinIO itself; Berth runs its worker (a child
 * process here) that reaches the tree through a real sshd on 127.0.0.x and streams into MinIO. restic
 * v0.18.1 is built from the Go module proxy into the tool cache on first use.
 *
 * Each round starts both parties from an empty repository and runs, alternating which party goes first
 * at every step: a full backup (Berth's verified backup against restic `backup` + `check --read-data`),
 * an incremental after ~1 % of the files changed (Berth's verified incremental against restic `backup`
 * alone), an incremental after 10 MiB changed in place inside one 64 MiB file, a restore of the latest
 * backup (Berth's checked restore against restic `restore`), and a restore of the first incremental.
 * Per step: wall seconds, peak RSS of the measured process, CPU seconds per party (Berth: its process
 * from the start of the operation, module loading left out as in a running worker, and the programs it
 * runs / the server side: sshd and all it ran / MinIO; restic: restic / MinIO) and bytes added to the
 * bucket. The table gives medians and Berth ÷ restic. Results go to docs/benchmarks.md.
 * BENCH_PARTIES=berth runs Berth alone (no table of ratios); BENCH_PROFILE=<dir> writes a --cpu-prof of each Berth child there.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, rmdir, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { createBackupService, createMemoryBackupStore, type BackupRecord } from '../activities/backups/index.ts';
import { createLogger } from '../lib/log.ts';
import { startMinio } from '../scripts/services/minio.ts';
import { cacheDir } from '../lib/paths.ts';
import { freePort } from '../lib/process.ts';
import { startSshd } from '../test/support/sshd.ts';
import { makeTree } from './tree.ts';
import { parentOrChild } from './support/entry.ts';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const RESTIC_VERSION = '0.18.1';

interface S3Access { endpoint: string; accessKeyId: string; secretAccessKey: string; bucket: string }

interface ChildInput {
  mode: 'backup' | 'restore';
  s3: S3Access;
  ssh: { host: string; port: number; username: string; hostKey: string; privateKeyPath: string };
  keyPrefix: string;
  key: string;
  paths: string[];
  stateDir: string;
  records: BackupRecord[];
  incremental?: boolean;
  backupId?: string;
  restoreRoot?: string;
}

/** One measured step of one party. */
interface Step {
  seconds: number;
  peakRssMiB: number;
  /** CPU seconds of the measured process and everything it ran locally (Berth: its ssh clients; restic: itself). */
  ownCpu: number;
  /** Berth only: sshd and everything it ran for the worker. */
  serverCpu: number;
  minioCpu: number;
  bytesAdded: number;
  /** Berth only: the worker process's resident size when the operation started (its modules loaded). */
  rssAtStart?: number;
  detail?: string;
}

// ---- Berth, in a child process (its peak RSS is its own) -------------------------------------------

/** CPU seconds of a process and its reaped children (utime + stime + cutime + cstime), clock ticks of 1/100 s. */
async function cpuOf(pid: number | 'self'): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number);
  return (f[11]! + f[12]! + f[13]! + f[14]!) / 100;
}

async function child(input: ChildInput): Promise<void> {
  const store = createMemoryBackupStore();
  for (const r of input.records) store.rows.set(r.id, { ...r, createdAt: new Date(r.createdAt), verifiedAt: r.verifiedAt && new Date(r.verifiedAt) });
  const service = createBackupService({
    s3: new S3Client({ endpoint: input.s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: input.s3 }),
    bucket: input.s3.bucket, keyPrefix: input.keyPrefix, masterKeys: { bench: Buffer.from(input.key, 'base64') }, currentKeyId: 'bench',
    store, log: createLogger('bench', 'warn'), paths: input.paths, stateDir: input.stateDir,
  });
  const ssh = { ...input.ssh, privateKey: await readFile(input.ssh.privateKeyPath) };
  // The worker is a long-lived process: what it spent loading its modules is not this operation's.
  const cpuAtStart = await cpuOf('self');
  const rssAtStart = Math.round(process.memoryUsage.rss() / 2 ** 20);
  const phases: Record<string, number> = {};
  // The largest resident size seen in each phase (sampled every 100 ms): where the peak comes from.
  const rssByPhase: Record<string, number> = {};
  let phase = '';
  const sampler = setInterval(() => {
    if (phase) rssByPhase[phase] = Math.max(rssByPhase[phase] ?? 0, Math.round(process.memoryUsage.rss() / 2 ** 20));
  }, 100);
  let phaseStart = performance.now();
  const onProgress = (p: { phase: string }) => {
    if (p.phase === phase) return;
    if (phase) phases[phase] = Number(((performance.now() - phaseStart) / 1000).toFixed(2));
    phase = p.phase;
    phaseStart = performance.now();
  };
  let out: Record<string, unknown>;
  if (input.mode === 'backup') {
    const r = await service.backup({ userId: 'bench-user', ssh, incremental: input.incremental, onProgress });
    out = { kind: r.kind, record: store.rows.get(r.backupId) };
  } else {
    const r = await service.restore({ backupId: input.backupId!, ssh, root: input.restoreRoot, onProgress });
    out = { chain: r.chain.length, fileCount: r.fileCount };
  }
  phases[phase] = Number(((performance.now() - phaseStart) / 1000).toFixed(2));
  clearInterval(sampler);
  const status = await readFile('/proc/self/status', 'utf8');
  out.phases = phases;
  out.rssByPhase = rssByPhase;
  out.peakRssMiB = Number(/VmHWM:\s+(\d+)/.exec(status)![1]) / 1024;
  out.ownCpu = (await cpuOf('self')) - cpuAtStart;
  out.rssAtStart = rssAtStart;
  process.stdout.write(JSON.stringify(out) + '\n');
}

// The child prints one JSON line whose shape this file defines on both sides.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
function runChild(input: ChildInput): Promise<Record<string, any>> {
  return new Promise((resolve, reject) => {
    const profile = process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : [];
    const proc = spawn(process.execPath, [...profile, import.meta.filename, '--child'], { stdio: ['pipe', 'pipe', 'inherit'] });
    let stdout = '';
    proc.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    proc.on('exit', (code) => (code === 0 ? resolve(JSON.parse(stdout.trim().split('\n').at(-1)!)) : reject(new Error(`child exited ${code}`))));
    proc.stdin.end(JSON.stringify(input));
  });
}

// ---- restic ----------------------------------------------------------------------------------------

/** restic from the tool cache, built with `go install` from the Go module proxy on first use. */
async function resticBinary(): Promise<string> {
  const bin = path.join(cacheDir, 'bin', 'restic');
  const version = existsSync(bin) ? (await run(bin, ['version'])).stdout : '';
  if (!version.includes(`restic ${RESTIC_VERSION} `)) {
    console.log(`building restic ${RESTIC_VERSION} with go install (a few minutes)...`);
    await mkdir(path.dirname(bin), { recursive: true });
    await run('go', ['install', `github.com/restic/restic/cmd/restic@v${RESTIC_VERSION}`], { env: { ...process.env, GOBIN: path.dirname(bin) }, maxBuffer: 16 * MiB });
  }
  return bin;
}

/** Runs a command under /usr/bin/time: wall seconds, peak RSS and CPU seconds of the process (and its children). */
async function timed(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ seconds: number; peakRssMiB: number; cpu: number; stdout: string }> {
  const { stdout, stderr } = await run('/usr/bin/time', ['-f', 'berth-time: %e %M %U %S', command, ...args], { env, maxBuffer: 256 * MiB });
  const line = stderr.split('\n').reverse().find((l) => l.startsWith('berth-time: '));
  if (!line) throw new Error(`${command} ${args[0]}: no timing line in ${stderr.slice(-500)}`);
  const [seconds, kb, user, sys] = line.slice('berth-time: '.length).split(' ').map(Number);
  return { seconds: seconds!, peakRssMiB: kb! / 1024, cpu: user! + sys!, stdout };
}

/**
 * CPU seconds of sshd and everything its sessions ran. An unprivileged login's session processes are
 * not all reaped into sshd's own counters, so sshd goes into a cpuacct cgroup of its own (its children
 * inherit it); where cgroups cannot be made, sshd's reaped children are counted instead.
 */
async function serverCpuMeter(sshdPid: number): Promise<() => Promise<number>> {
  const group = `/sys/fs/cgroup/cpuacct/berth-bench-${process.pid}`;
  try {
    await mkdir(group);
    await writeFile(path.join(group, 'cgroup.procs'), String(sshdPid));
    // Removed once sshd and its sessions are gone.
    cleanups.push(() => rmdir(group).catch(() => {}));
    return async () => Number(await readFile(path.join(group, 'cpuacct.usage'), 'utf8')) / 1e9;
  } catch {
    console.log('(no cpuacct cgroup: server CPU counts only what sshd reaped)');
    return () => cpuOf(sshdPid);
  }
}
const cleanups: (() => Promise<void>)[] = [];

// ---- the run ---------------------------------------------------------------------------------------

/** Changes ~1 % of the files the way an assistant does: appends to logs, rewrites sessions, adds and removes a few. */
async function changeOnePercent(tree: string, round: number): Promise<string> {
  const logs = (await readdir(path.join(tree, 'logs'))).sort();
  const sessions = (await readdir(path.join(tree, 'sessions'))).sort();
  const total = logs.length + sessions.length + (await readdir(path.join(tree, 'blobs'))).length;
  const want = Math.max(4, Math.round(total / 100));
  const pick = (list: string[], n: number, salt: number) => Array.from({ length: n }, (_, i) => list[(i * 7919 + salt * 104_729) % list.length]!);
  const appended = pick(logs, Math.max(1, Math.round(want * 0.2)), round);
  const rewritten = pick(sessions, Math.max(1, Math.round(want * 0.6)), round + 1);
  const removed = pick(sessions, Math.max(1, Math.round(want * 0.1)), round + 2).filter((s) => !rewritten.includes(s));
  const added = Math.max(1, want - appended.length - rewritten.length - removed.length);
  await run('bash', ['-eu', '-c', `
    cd "$1"; shift
    n=$1 r=$2; shift 2
    for f in "$@"; do case "$f" in
      logs/*) head -c 49152 /dev/urandom | base64 -w 120 >> "$f" ;;
      rm:*) rm -f -- "\${f#rm:}" ;;
      *) head -c 12288 /dev/urandom | base64 > "$f" ;;
    esac; done
    for i in $(seq 1 "$n"); do head -c 12288 /dev/urandom | base64 > "sessions/new-$r-$i.json"; done
  `, 'bash', tree, String(added), String(round), ...appended.map((f) => `logs/${f}`), ...rewritten.map((f) => `sessions/${f}`), ...removed.map((f) => `rm:sessions/${f}`)]);
  return `${appended.length + rewritten.length + removed.length + added} of ${total} files (${appended.length} logs appended, ${rewritten.length} sessions rewritten, ${removed.length} removed, ${added} added)`;
}

/** Overwrites 10 MiB in the middle of one 64 MiB blob, in place (as a database file changes). */
async function changeInPlace(tree: string): Promise<string> {
  await run('bash', ['-eu', '-c', 'head -c $((10 << 20)) /dev/urandom | dd of="$1/blobs/blob1.bin" bs=1M seek=20 conv=notrunc status=none', 'bash', tree]);
  return '10 MiB at offset 20 MiB of blobs/blob1.bin (64 MiB)';
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function main(): Promise<void> {
  const gib = Number(process.env.BENCH_GIB ?? '1');
  const rounds = Number(process.env.BENCH_ROUNDS ?? '3');
  // BENCH_PARTIES=berth leaves restic out (quick looks at Berth alone; the table needs both).
  const parties = process.env.BENCH_PARTIES === 'berth' ? 'berth' : 'both';
  const restic = await resticBinary();
  const dir = await mkdtemp(path.join(tmpdir(), 'berth-bench-restic-'));
  const minioPort = await freePort();
  const s3Access: S3Access = { endpoint: '', accessKeyId: 'bench', secretAccessKey: 'bench-secret', bucket: 'bench' };
  const [sshd, minio] = await Promise.all([
    // The unprivileged login, as production (a root login here would also run root's shell start-up files).
    startSshd(),
    startMinio({ dataDir: path.join(dir, 'minio'), port: minioPort, consolePort: await freePort(), accessKeyId: s3Access.accessKeyId, secretAccessKey: s3Access.secretAccessKey, buckets: ['bench'], sink: () => {} }),
  ]);
  s3Access.endpoint = minio.endpoint;
  const s3 = new S3Client({ endpoint: minio.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: s3Access });
  const storedUnder = async (prefix: string): Promise<number> => {
    let bytes = 0;
    let token: string | undefined;
    do {
      const page = await s3.send(new ListObjectsV2Command({ Bucket: 'bench', Prefix: prefix, ContinuationToken: token }));
      for (const o of page.Contents ?? []) bytes += o.Size ?? 0;
      token = page.NextContinuationToken;
    } while (token);
    return bytes;
  };
  const results: Record<string, { berth: Step[]; restic: Step[] }> = {};
  const record = (row: string, party: 'berth' | 'restic', step: Step) => {
    (results[row] ??= { berth: [], restic: [] })[party].push(step);
    console.log(`  ${row} · ${party}: ${step.seconds.toFixed(1)} s, ${step.peakRssMiB.toFixed(0)} MiB, CPU ${step.ownCpu.toFixed(1)}/${step.serverCpu.toFixed(1)}/${step.minioCpu.toFixed(1)}, +${(step.bytesAdded / 1e6).toFixed(1)} MB${step.detail ? ` (${step.detail})` : ''}`);
  };
  const loads: number[] = [];
  try {
    const tree = path.join(dir, 'tree');
    console.log(`making a ${gib} GiB tree...`);
    await makeTree(tree, gib * 1024 * MiB);
    // The login account owns the tree (as the assistant's account does) and can reach it and its state.
    await run('chown', ['-R', `${sshd.account.uid}:${sshd.account.gid}`, tree]);
    await chmod(dir, 0o755);
    const serverCpuOf = await serverCpuMeter(sshd.process.pid);
    await run('bash', ['-c', 'tar -cf - -C "$1" . > /dev/null', 'bash', tree]); // warm the page cache
    const keyPath = path.join(dir, 'client_key');
    await writeFile(keyPath, sshd.target.privateKey, { mode: 0o600 });
    const rel = tree.slice(1);

    /** CPU of sshd's sessions and of MinIO while `fn` runs. */
    const accounted = async <T>(fn: () => Promise<T>) => {
      const [s0, m0] = await Promise.all([serverCpuOf(), cpuOf(minio.process.pid)]);
      const result = await fn();
      const [s1, m1] = await Promise.all([serverCpuOf(), cpuOf(minio.process.pid)]);
      return { result, serverCpu: s1 - s0, minioCpu: m1 - m0 };
    };

    for (let round = 0; round < rounds; round++) {
      loads.push(loadavg()[0]!);
      console.log(`round ${round + 1} of ${rounds} (load average ${loadavg().map((l) => l.toFixed(1)).join(' ')})`);
      const berthPrefix = `berth-${round}/`;
      const resticPrefix = `restic-${round}/`;
      let records: BackupRecord[] = [];
      const base: ChildInput = {
        mode: 'backup', s3: s3Access, ssh: { ...sshd.target, privateKeyPath: keyPath }, keyPrefix: berthPrefix,
        key: Buffer.alloc(32, 7).toString('base64'), paths: [rel], stateDir: path.join(sshd.account.home, `state-${round}`), records,
      };
      const resticEnv = {
        ...process.env, RESTIC_REPOSITORY: `s3:${minio.endpoint}/bench/${resticPrefix.slice(0, -1)}`, RESTIC_PASSWORD: 'bench-password',
        AWS_ACCESS_KEY_ID: s3Access.accessKeyId, AWS_SECRET_ACCESS_KEY: s3Access.secretAccessKey, RESTIC_CACHE_DIR: path.join(dir, `restic-cache-${round}`),
      };
      await run(restic, ['init', '--quiet'], { env: resticEnv });
      const resticSnapshots: string[] = [];

      const berthBackup = async (row: string, incremental: boolean) => {
        const before = await storedUnder(berthPrefix);
        const { result, serverCpu, minioCpu } = await accounted(() => runChild({ ...base, records, incremental }));
        const rec = result.record as BackupRecord;
        records = [...records, rec];
        record(row, 'berth', { seconds: Object.values(result.phases as Record<string, number>).reduce((a, b) => a + b, 0), peakRssMiB: result.peakRssMiB, ownCpu: result.ownCpu,
          serverCpu, minioCpu, bytesAdded: (await storedUnder(berthPrefix)) - before, rssAtStart: result.rssAtStart, detail: `${result.kind}; phases ${JSON.stringify(result.phases)}; MiB at start ${result.rssAtStart}, by phase ${JSON.stringify(result.rssByPhase)}` });
      };
      const resticBackup = async (row: string, check: boolean) => {
        const before = await storedUnder(resticPrefix);
        const { result: b, serverCpu, minioCpu } = await accounted(() => timed(restic, ['backup', '--json', '--quiet', '--host', 'bench', tree], resticEnv));
        const summary = JSON.parse(b.stdout.trim().split('\n').at(-1)!) as { snapshot_id: string; data_added_packed: number };
        resticSnapshots.push(summary.snapshot_id);
        const step: Step = { seconds: b.seconds, peakRssMiB: b.peakRssMiB, ownCpu: b.cpu, serverCpu, minioCpu, bytesAdded: (await storedUnder(resticPrefix)) - before, detail: `backup ${b.seconds.toFixed(1)} s` };
        if (check) {
          const c = await accounted(() => timed(restic, ['check', '--read-data', '--quiet'], resticEnv));
          step.seconds += c.result.seconds;
          step.peakRssMiB = Math.max(step.peakRssMiB, c.result.peakRssMiB);
          step.ownCpu += c.result.cpu;
          step.serverCpu += c.serverCpu;
          step.minioCpu += c.minioCpu;
          step.detail += `, check --read-data ${c.result.seconds.toFixed(1)} s (${c.result.peakRssMiB.toFixed(0)} MiB)`;
        }
        record(row, 'restic', step);
      };
      const berthRestore = async (row: string, backupId: string) => {
        const target = path.join(sshd.account.home, 'restored');
        const { result, serverCpu, minioCpu } = await accounted(() => runChild({ ...base, mode: 'restore', records, backupId, restoreRoot: target }));
        await rm(target, { recursive: true, force: true });
        record(row, 'berth', { seconds: Object.values(result.phases as Record<string, number>).reduce((a, b) => a + b, 0), peakRssMiB: result.peakRssMiB, ownCpu: result.ownCpu,
          serverCpu, minioCpu, bytesAdded: 0, rssAtStart: result.rssAtStart, detail: `chain of ${result.chain}; phases ${JSON.stringify(result.phases)}; MiB at start ${result.rssAtStart}, by phase ${JSON.stringify(result.rssByPhase)}` });
      };
      const resticRestore = async (row: string, snapshot: string) => {
        const target = path.join(dir, 'restored-restic');
        const { result, serverCpu, minioCpu } = await accounted(() => timed(restic, ['restore', '--quiet', snapshot, '--target', target], resticEnv));
        await rm(target, { recursive: true, force: true });
        record(row, 'restic', { seconds: result.seconds, peakRssMiB: result.peakRssMiB, ownCpu: result.cpu, serverCpu, minioCpu, bytesAdded: 0 });
      };
      /** Both parties, the first one alternating by round and step. */
      const both = async (i: number, berth: () => Promise<void>, resticStep: () => Promise<void>) => {
        if (parties === 'berth') return berth();
        if ((round + i) % 2 === 0) { await berth(); await resticStep(); } else { await resticStep(); await berth(); }
      };

      await both(0, () => berthBackup('full', false), () => resticBackup('full', true));
      console.log(`  changed ${await changeOnePercent(tree, round)}`);
      await both(1, () => berthBackup('incremental, 1 % of files changed', true), () => resticBackup('incremental, 1 % of files changed', false));
      console.log(`  changed ${await changeInPlace(tree)}`);
      await both(2, () => berthBackup('incremental, 10 MiB changed inside a 64 MiB file', true), () => resticBackup('incremental, 10 MiB changed inside a 64 MiB file', false));
      await both(3, () => berthRestore('restore of the latest', records.at(-1)!.id), () => resticRestore('restore of the latest', resticSnapshots.at(-1)!));
      await both(4, () => berthRestore('restore of an older incremental', records[1]!.id), () => resticRestore('restore of an older incremental', resticSnapshots[1]!));
    }

    const rows = Object.entries(results);
    const fmt = (xs: number[], digits = 1) => median(xs).toFixed(digits);
    const ratio = (a: number[], b: number[]) => (median(b) > 0 ? (median(a) / median(b)).toFixed(2) : '–');
    console.log(`\nmachine: ${cpus().length} × ${cpus()[0]?.model}, Node ${process.version}, restic ${RESTIC_VERSION}; ${gib} GiB tree; ${rounds} rounds; load average at round starts ${loads.map((l) => l.toFixed(1)).join(', ')}, at the end ${loadavg()[0]!.toFixed(1)}`);
    console.log('| medians of each row | Berth | restic | Berth ÷ restic |');
    console.log('|---|---|---|---|');
    for (const [row, r] of rows) {
      const b = (f: (s: Step) => number) => r.berth.map(f);
      const s = (f: (s: Step) => number) => r.restic.map(f);
      console.log(`| **${row}**: seconds | ${fmt(b((x) => x.seconds))} | ${fmt(s((x) => x.seconds))} | **${ratio(b((x) => x.seconds), s((x) => x.seconds))}** |`);
      console.log(`| peak RSS MiB (Berth: above the worker process's own ${fmt(b((x) => x.rssAtStart ?? 0), 0)} at the start) | ${fmt(b((x) => x.peakRssMiB), 0)} (+${fmt(b((x) => x.peakRssMiB - (x.rssAtStart ?? 0)), 0)}) | ${fmt(s((x) => x.peakRssMiB), 0)} | ${ratio(b((x) => x.peakRssMiB), s((x) => x.peakRssMiB))} |`);
      const total = (x: Step) => x.ownCpu + x.serverCpu + x.minioCpu;
      console.log(`| CPU s: all (Berth own / server / MinIO; restic own / MinIO) | ${fmt(b(total))} (${fmt(b((x) => x.ownCpu))} / ${fmt(b((x) => x.serverCpu))} / ${fmt(b((x) => x.minioCpu))}) | ${fmt(s(total))} (${fmt(s((x) => x.ownCpu))} / ${fmt(s((x) => x.minioCpu))}) | ${ratio(b(total), s(total))} |`);
      if (r.berth.some((x) => x.bytesAdded > 0)) console.log(`| MB uploaded | ${fmt(b((x) => x.bytesAdded / 1e6))} | ${fmt(s((x) => x.bytesAdded / 1e6))} | ${ratio(b((x) => x.bytesAdded), s((x) => x.bytesAdded))} |`);
    }
  } finally {
    await sshd.stop();
    await minio.stop();
    for (const cleanup of cleanups) await cleanup();
    await rm(dir, { recursive: true, force: true });
  }
}

await parentOrChild<ChildInput>(main, child);

/**
 * Backup and restore throughput and peak RSS over a real local sshd into a real MinIO, next to
 * OpenSSH `ssh host tar -cf - PATHS | zstd -3 > /dev/null` (the practical limit) in the same run.
 *
 *   node bench/backup.ts            # 1 GiB tree;  BENCH_GIB=4 node bench/backup.ts for 4 GiB
 *
 * Options (environment): BENCH_COMPRESS_ON=server|worker (where zstd runs), BENCH_PART_MIB,
 * BENCH_QUEUE, BENCH_CHUNK_MIB, BENCH_ZSTD_THREADS, BENCH_PROFILE=<dir> (children write --cpu-prof there).
 *
 * Each measured side runs in its own child process so its peak RSS (VmHWM) is its own. CPU seconds
 * are counted per process group for every run: the Node process (process.cpuUsage), MinIO and the
 * server side (sshd with everything it ran: tar, zstd, the archive lister, find, b2sum) from /proc/<pid>/stat, so a
 * result says where the time went. MinIO's own ceiling (upload of a file of the stored size, then a
 * hashed read-back) is measured in the same run, since it shares the 2 cores.
 * Results go to docs/benchmarks.md ("Backup") by hand, with the machine they ran on.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { DeleteObjectCommand, GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { createLogger } from '../lib/log.ts';
import { createBackupService, createMemoryBackupStore, type BackupRecord } from '../activities/backups/index.ts';
import { freePort } from '../lib/process.ts';
import { startMinio } from '../scripts/services/minio.ts';
import { startSshd } from '../test/support/sshd.ts';
import { makeTree } from './tree.ts';
import { parentOrChild } from './support/entry.ts';

const run = promisify(execFile);
const MiB = 1024 * 1024;

interface ChildInput {
  mode: 'backup' | 'restore' | 'minio';
  /** minio mode: the file to upload (then read back and hash). */
  file?: string;
  s3: { endpoint: string; accessKeyId: string; secretAccessKey: string; bucket: string };
  ssh: { host: string; port: number; username: string; hostKey: string; privateKeyPath: string };
  key: string;
  paths: string[];
  stateDir: string;
  restoreRoot?: string;
  record?: BackupRecord;
}

const envNumber = (name: string): number | undefined => (process.env[name] ? Number(process.env[name]) : undefined);
const partSize = (envNumber('BENCH_PART_MIB') ?? 8) * MiB;
const queueSize = envNumber('BENCH_QUEUE') ?? 2;

function s3Client(input: ChildInput): S3Client {
  return new S3Client({ endpoint: input.s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: input.s3 });
}

/** MinIO alone: multipart upload of a page-cached file (unsigned parts, as the service sends them), then a hashed read-back. */
async function minioCeiling(input: ChildInput): Promise<Record<string, unknown>> {
  const s3 = s3Client(input);
  s3.middlewareStack.add((next) => async (args) => {
    (args.request as { headers: Record<string, string> }).headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
    return next(args);
  }, { step: 'build', name: 'benchUnsigned' });
  const Key = 'bench/minio-ceiling';
  const cpu0 = process.cpuUsage();
  let t = performance.now();
  await new Upload({ client: s3, params: { Bucket: input.s3.bucket, Key, Body: createReadStream(input.file!, { highWaterMark: 4 * MiB }) }, partSize, queueSize }).done();
  const uploadSeconds = (performance.now() - t) / 1000;
  const cpu1 = process.cpuUsage(cpu0);
  t = performance.now();
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of (await s3.send(new GetObjectCommand({ Bucket: input.s3.bucket, Key }))).Body as Readable) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  hash.digest();
  const readSeconds = (performance.now() - t) / 1000;
  const cpu2 = process.cpuUsage(cpu0);
  await s3.send(new DeleteObjectCommand({ Bucket: input.s3.bucket, Key }));
  return { bytes, uploadSeconds, readSeconds, uploadCpu: (cpu1.user + cpu1.system) / 1e6, readCpu: (cpu2.user + cpu2.system) / 1e6 - (cpu1.user + cpu1.system) / 1e6 };
}

async function child(input: ChildInput): Promise<void> {
  if (input.mode === 'minio') {
    const out = await minioCeiling(input);
    const status = await readFile('/proc/self/status', 'utf8');
    process.stdout.write(JSON.stringify({ ...out, peakRssMiB: Number(/VmHWM:\s+(\d+)/.exec(status)![1]) / 1024 }) + '\n');
    return;
  }
  const store = createMemoryBackupStore();
  if (input.record) store.rows.set(input.record.id, { ...input.record, createdAt: new Date(input.record.createdAt), verifiedAt: new Date(input.record.verifiedAt!) });
  const service = createBackupService({
    s3: s3Client(input),
    bucket: input.s3.bucket, keyPrefix: 'bench/', masterKeys: { bench: Buffer.from(input.key, 'base64') }, currentKeyId: 'bench',
    store, log: createLogger('bench', 'warn'), paths: input.paths, stateDir: input.stateDir,
    compressOn: process.env.BENCH_COMPRESS_ON === 'worker' ? 'worker' : 'server',
    zstdThreads: envNumber('BENCH_ZSTD_THREADS'),
    partSize, queueSize,
    chunkSize: envNumber('BENCH_CHUNK_MIB') ? envNumber('BENCH_CHUNK_MIB')! * MiB : undefined,
  });
  const ssh = { ...input.ssh, privateKey: await readFile(input.ssh.privateKeyPath) };
  const started = performance.now();
  const cpuStart = process.cpuUsage();
  const phases: Record<string, number> = {};
  let phase = '', phaseStart = started;
  const onProgress = (p: { phase: string }) => {
    if (p.phase !== phase) {
      if (phase) phases[phase] = (performance.now() - phaseStart) / 1000;
      phase = p.phase;
      phaseStart = performance.now();
    }
  };
  let out: Record<string, unknown>;
  if (input.mode === 'backup') {
    const r = await service.backup({ userId: 'bench-user', ssh, onProgress });
    out = { archiveBytes: r.archiveBytes, storedBytes: r.sizeBytes, record: store.rows.get(r.backupId) };
  } else {
    const r = await service.restore({ backupId: input.record!.id, ssh, root: input.restoreRoot, onProgress });
    out = { fileCount: r.fileCount, totalBytes: r.totalBytes };
  }
  phases[phase] = (performance.now() - phaseStart) / 1000;
  const status = await readFile('/proc/self/status', 'utf8');
  const peakRssMiB = Number(/VmHWM:\s+(\d+)/.exec(status)![1]) / 1024;
  const cpu = process.cpuUsage(cpuStart);
  process.stdout.write(JSON.stringify({ ...out, seconds: (performance.now() - started) / 1000, phases, peakRssMiB, cpuSeconds: (cpu.user + cpu.system) / 1e6 }) + '\n');
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

/** CPU seconds a process and its reaped children used so far (utime + stime + cutime + cstime). */
async function cpuOf(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number);
  // Fields 14–17 of stat(5), counted from 1 with pid and comm before the ')'; clock ticks of 1/100 s.
  return (f[11]! + f[12]! + f[13]! + f[14]!) / 100;
}

async function main(): Promise<void> {
  const gib = Number(process.env.BENCH_GIB ?? '1');
  const dir = await mkdtemp(path.join(tmpdir(), 'berth-bench-backup-'));
  const minioPort = await freePort();
  const [sshd, minio] = await Promise.all([
    // Logged in as root: sshd's own CPU account of its sessions (cutime, read below) is complete only
    // then (measured: an unprivileged login's sessions did not show in it); the work is the same.
    startSshd({ login: 'root' }),
    startMinio({ dataDir: path.join(dir, 'minio'), port: minioPort, consolePort: await freePort(), accessKeyId: 'bench', secretAccessKey: 'bench-secret', buckets: ['bench'], sink: () => {} }),
  ]);
  try {
    const tree = path.join(dir, 'tree');
    console.log(`making a ${gib} GiB tree...`);
    await makeTree(tree, gib * 1024 * MiB);
    const treeBytes = Number((await run('du', ['-sb', tree])).stdout.split('\t')[0]);
    const keyPath = path.join(dir, 'client_key');
    await writeFile(keyPath, sshd.target.privateKey, { mode: 0o600 });
    const knownHosts = path.join(dir, 'known_hosts');
    await writeFile(knownHosts, `[${sshd.target.host}]:${sshd.target.port} ${sshd.target.hostKey}\n`);
    const rel = tree.slice(1);
    const loadBefore = loadavg();

    /** Runs `fn`, returning its result with the CPU seconds sshd (server side) and MinIO used meanwhile. */
    const accounted = async <T>(fn: () => Promise<T>) => {
      const [s0, m0] = await Promise.all([cpuOf(sshd.process.pid), cpuOf(minio.process.pid)]);
      const result = await fn();
      const [s1, m1] = await Promise.all([cpuOf(sshd.process.pid), cpuOf(minio.process.pid)]);
      return { ...result, serverCpu: s1 - s0, minioCpu: m1 - m0 };
    };

    // The practical limit: OpenSSH + tar + zstd -3, the same tree, warm page cache for both sides.
    const timeIt = async (cmd: string) => {
      const { stderr } = await run('bash', ['-c', `/usr/bin/time -f '%e %M %U %S' bash -c "$1" 2>&1 >/dev/null | tail -n 1 >&2`, 'bash', cmd], { maxBuffer: 16 * MiB });
      const [secs, kb, user, sys] = stderr.trim().split(/\s+/).map(Number);
      return { seconds: secs!, peakRssMiB: kb! / 1024, cpuSeconds: user! + sys! };
    };
    const sshCmd = `ssh -i ${keyPath} -o UserKnownHostsFile=${knownHosts} -o StrictHostKeyChecking=yes -o Ciphers=aes128-gcm@openssh.com -p ${sshd.target.port} ${sshd.target.username}@${sshd.target.host}`;
    await timeIt(`${sshCmd} tar -C / -cf - ${rel} > /dev/null`); // warm the cache
    const limit = () => accounted(() => timeIt(`${sshCmd} tar -C / -cf - ${rel} | zstd -3 -q -T1 > /dev/null`));
    const baseline = await limit();

    const input: ChildInput = {
      mode: 'backup',
      s3: { endpoint: minio.endpoint, accessKeyId: 'bench', secretAccessKey: 'bench-secret', bucket: 'bench' },
      ssh: { ...sshd.target, privateKeyPath: keyPath },
      key: Buffer.alloc(32, 7).toString('base64'),
      paths: [rel],
      stateDir: path.join(dir, 'state'),
    };
    const backup = await accounted(() => runChild(input));
    const restore = await accounted(() => runChild({ ...input, mode: 'restore', record: backup.record, restoreRoot: path.join(dir, 'restored') }));
    await rm(path.join(dir, 'restored'), { recursive: true, force: true });
    const baseline2 = await limit();

    // MinIO's own ceiling on these cores: the same number of bytes, from a page-cached file.
    const blob = path.join(dir, 'stored-size.bin');
    await run('bash', ['-c', `head -c ${backup.storedBytes} /dev/urandom > "$1" && cat "$1" > /dev/null`, 'bash', blob]);
    const ceiling = await accounted(() => runChild({ ...input, mode: 'minio', file: blob }));
    await rm(blob, { force: true });

    const mbps = (bytes: number, s: number) => (bytes / 1e6 / s).toFixed(0);
    const cpu = (r: { serverCpu: number; minioCpu: number }, own: number) => `${own.toFixed(1)} / ${r.minioCpu.toFixed(1)} / ${r.serverCpu.toFixed(1)}`;
    const streamSecs = backup.phases.streaming as number;
    const restoreSecs = restore.phases.restoring as number;
    const gb = (n: number) => (n / 2 ** 30).toFixed(2);
    console.log(`\nmachine: ${cpus().length} × ${cpus()[0]?.model}, Node ${process.version}; load average before ${loadBefore.map((l) => l.toFixed(2)).join(' ')}, after ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    console.log(`tree: ${gb(treeBytes)} GiB apparent; archive ${gb(backup.archiveBytes)} GiB; stored ${gb(backup.storedBytes)} GiB; `
      + `compressOn ${process.env.BENCH_COMPRESS_ON ?? 'server'}, part ${partSize / MiB} MiB × queue ${queueSize}`);
    console.log('| run | seconds | MB/s (tree) | × limit | peak RSS MiB | CPU s: own / MinIO / server |');
    console.log('|---|---|---|---|---|---|');
    const ratio = (s: number) => (baseline.seconds / s).toFixed(2);
    console.log(`| limit: ssh tar \\| zstd -3 > /dev/null | ${baseline.seconds.toFixed(1)} | ${mbps(treeBytes, baseline.seconds)} | 1.00 | ${baseline.peakRssMiB.toFixed(0)} (largest process) | ${cpu(baseline, baseline.cpuSeconds)} |`);
    console.log(`| limit again, after backup and restore | ${baseline2.seconds.toFixed(1)} | ${mbps(treeBytes, baseline2.seconds)} | ${ratio(baseline2.seconds)} | ${baseline2.peakRssMiB.toFixed(0)} | ${cpu(baseline2, baseline2.cpuSeconds)} |`);
    console.log(`| backup: streaming phase (tar+zstd → encrypt → SHA-256 → upload) | ${streamSecs.toFixed(1)} | ${mbps(treeBytes, streamSecs)} | ${ratio(streamSecs)} | | |`);
    console.log(`| backup: whole (+ re-read & SHA-256 from storage ‖ reading the listing ${(backup.phases.verifying as number).toFixed(1)} s) | ${(backup.seconds as number).toFixed(1)} | ${mbps(treeBytes, backup.seconds)} | ${ratio(backup.seconds)} | ${(backup.peakRssMiB as number).toFixed(0)} | ${cpu(backup, backup.cpuSeconds)} |`);
    console.log(`| restore: streaming phase (GET → SHA-256 → decrypt → tar -x) | ${restoreSecs.toFixed(1)} | ${mbps(treeBytes, restoreSecs)} | ${ratio(restoreSecs)} | | |`);
    console.log(`| restore: whole (+ tree check ${(restore.phases.checking as number).toFixed(1)} s) | ${(restore.seconds as number).toFixed(1)} | ${mbps(treeBytes, restore.seconds)} | ${ratio(restore.seconds)} | ${(restore.peakRssMiB as number).toFixed(0)} | ${cpu(restore, restore.cpuSeconds)} |`);
    console.log(`| MinIO alone: upload ${gb(ceiling.bytes)} GiB from a cached file | ${(ceiling.uploadSeconds as number).toFixed(1)} | ${mbps(ceiling.bytes, ceiling.uploadSeconds)} (stored bytes) | | ${(ceiling.peakRssMiB as number).toFixed(0)} | ${(ceiling.uploadCpu as number).toFixed(1)} / – / – |`);
    console.log(`| MinIO alone: read back + SHA-256 | ${(ceiling.readSeconds as number).toFixed(1)} | ${mbps(ceiling.bytes, ceiling.readSeconds)} (stored bytes) | | | ${(ceiling.readCpu as number).toFixed(1)} / ${ceiling.minioCpu.toFixed(1)} (both) / – |`);
    console.log(`phases: backup ${JSON.stringify(backup.phases)} restore ${JSON.stringify(restore.phases)}`);
  } finally {
    await sshd.stop();
    await minio.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await parentOrChild<ChildInput>(main, child);

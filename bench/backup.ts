/**
 * Backup and restore throughput and peak RSS over a real local sshd into a real MinIO, next to
 * OpenSSH `ssh host tar -cf - PATHS | zstd -3 > /dev/null` (the practical limit) in the same run.
 *
 *   node bench/backup.ts            # 1 GiB tree;  BENCH_GIB=4 node bench/backup.ts for 4 GiB
 *
 * Each measured side runs in its own child process so its peak RSS (VmHWM) is its own.
 * Results go to docs/benchmarks.md ("Backup") by hand, with the machine they ran on.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { S3Client } from '@aws-sdk/client-s3';
import { createLogger } from '../lib/log.ts';
import { createBackupService, createMemoryBackupStore, type BackupRecord } from '../activities/backups/index.ts';
import { freePort } from '../scripts/services/process.ts';
import { startMinio } from '../scripts/services/minio.ts';
import { startSshd } from '../test/support/sshd.ts';

const run = promisify(execFile);
const MiB = 1024 * 1024;

interface ChildInput {
  mode: 'backup' | 'restore';
  s3: { endpoint: string; accessKeyId: string; secretAccessKey: string; bucket: string };
  ssh: { host: string; port: number; username: string; hostKey: string; privateKeyPath: string };
  key: string;
  paths: string[];
  restoreRoot?: string;
  record?: BackupRecord;
}

async function child(input: ChildInput): Promise<void> {
  const store = createMemoryBackupStore();
  if (input.record) store.rows.set(input.record.id, { ...input.record, createdAt: new Date(input.record.createdAt), verifiedAt: new Date(input.record.verifiedAt!) });
  const service = createBackupService({
    s3: new S3Client({ endpoint: input.s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: input.s3 }),
    bucket: input.s3.bucket, keyPrefix: 'bench/', masterKeys: { bench: Buffer.from(input.key, 'base64') }, currentKeyId: 'bench',
    store, log: createLogger('bench', 'warn'), paths: input.paths,
  });
  const ssh = { ...input.ssh, privateKey: await readFile(input.ssh.privateKeyPath) };
  const started = performance.now();
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
  process.stdout.write(JSON.stringify({ ...out, seconds: (performance.now() - started) / 1000, phases, peakRssMiB }) + '\n');
}

// The child prints one JSON line whose shape this file defines on both sides.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
function runChild(input: ChildInput): Promise<Record<string, any>> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [import.meta.filename, '--child'], { stdio: ['pipe', 'pipe', 'inherit'] });
    let stdout = '';
    proc.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    proc.on('exit', (code) => (code === 0 ? resolve(JSON.parse(stdout.trim().split('\n').at(-1)!)) : reject(new Error(`child exited ${code}`))));
    proc.stdin.end(JSON.stringify(input));
  });
}

/** A tree like an assistant's state: JSON/log text (compressible), binary blobs (not), many small files. */
async function makeTree(dir: string, bytes: number): Promise<void> {
  const blobs = Math.max(1, Math.floor((bytes * 0.5) / (64 * MiB)));
  const textFiles = Math.max(1, Math.floor((bytes * 0.45) / (4 * MiB)));
  const small = Math.floor((bytes * 0.05) / (16 * 1024));
  await run('bash', ['-eu', '-c', `
    mkdir -p "$1"/blobs "$1"/logs "$1"/sessions && cd "$1"
    for i in $(seq 1 ${blobs}); do head -c ${64 * MiB} /dev/urandom > blobs/blob$i.bin; done
    for i in $(seq 1 ${textFiles}); do head -c ${3 * MiB} /dev/urandom | base64 -w 120 | head -c ${4 * MiB} > logs/log$i.jsonl; done
    for i in $(seq 1 ${small}); do head -c 12288 /dev/urandom | base64 > sessions/s$i.json; done
  `, 'bash', dir], { maxBuffer: 16 * MiB });
}

async function main(): Promise<void> {
  const gib = Number(process.env.BENCH_GIB ?? '1');
  const dir = await mkdtemp(path.join(tmpdir(), 'berth-bench-backup-'));
  const minioPort = await freePort();
  const [sshd, minio] = await Promise.all([
    startSshd(),
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

    // The practical limit: OpenSSH + tar + zstd -3, the same tree, warm page cache for both sides.
    const timeIt = async (cmd: string) => {
      const { stderr } = await run('bash', ['-c', `/usr/bin/time -f '%e %M' bash -c "$1" 2>&1 >/dev/null | tail -n 1 >&2`, 'bash', cmd], { maxBuffer: 16 * MiB });
      const [secs, kb] = stderr.trim().split(/\s+/).map(Number);
      return { seconds: secs!, peakRssMiB: kb! / 1024 };
    };
    const sshCmd = `ssh -i ${keyPath} -o UserKnownHostsFile=${knownHosts} -o StrictHostKeyChecking=yes -o Ciphers=aes128-gcm@openssh.com -p ${sshd.target.port} root@${sshd.target.host}`;
    await timeIt(`${sshCmd} tar -C / -cf - ${rel} > /dev/null`); // warm the cache
    const baseline = await timeIt(`${sshCmd} tar -C / -cf - ${rel} | zstd -3 -q -T1 > /dev/null`);

    const input: ChildInput = {
      mode: 'backup',
      s3: { endpoint: minio.endpoint, accessKeyId: 'bench', secretAccessKey: 'bench-secret', bucket: 'bench' },
      ssh: { ...sshd.target, privateKeyPath: keyPath },
      key: Buffer.alloc(32, 7).toString('base64'),
      paths: [rel],
    };
    const backup = await runChild(input);
    const restore = await runChild({ ...input, mode: 'restore', record: backup.record, restoreRoot: path.join(dir, 'restored') });

    const mbps = (bytes: number, s: number) => (bytes / 1e6 / s).toFixed(0);
    const streamSecs = backup.phases.streaming as number;
    console.log(`\nmachine: ${cpus().length} × ${cpus()[0]?.model}, Node ${process.version}`);
    console.log(`tree: ${(treeBytes / 2 ** 30).toFixed(2)} GiB apparent; archive ${(backup.archiveBytes / 2 ** 30).toFixed(2)} GiB; stored ${(backup.storedBytes / 2 ** 30).toFixed(2)} GiB`);
    console.log('| run | seconds | MB/s (tree) | peak RSS MiB |');
    console.log('|---|---|---|---|');
    console.log(`| ssh tar \\| zstd -3 > /dev/null | ${baseline.seconds.toFixed(1)} | ${mbps(treeBytes, baseline.seconds)} | ${baseline.peakRssMiB.toFixed(0)} (largest process) |`);
    console.log(`| backup: stream to S3 (tar→zstd→encrypt→upload) | ${streamSecs.toFixed(1)} | ${mbps(treeBytes, streamSecs)} | |`);
    console.log(`| backup: whole (+ re-read & hash from S3, manifest hashes) | ${(backup.seconds as number).toFixed(1)} | ${mbps(treeBytes, backup.seconds)} | ${(backup.peakRssMiB as number).toFixed(0)} |`);
    console.log(`| restore: whole (stream, verify, tar -x, check tree) | ${(restore.seconds as number).toFixed(1)} | ${mbps(treeBytes, restore.seconds)} | ${(restore.peakRssMiB as number).toFixed(0)} |`);
    console.log(`phases: backup ${JSON.stringify(backup.phases)} restore ${JSON.stringify(restore.phases)}`);
    console.log(`streaming vs limit: ${(baseline.seconds / streamSecs).toFixed(2)}×`);
  } finally {
    await sshd.stop();
    await minio.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv.includes('--child')) {
  let text = '';
  for await (const chunk of process.stdin) text += chunk;
  await child(JSON.parse(text) as ChildInput);
} else {
  await main();
}

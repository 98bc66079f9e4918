/**
 * What keeping ssh2's native crypto binding out of Berth's processes costs: SSH throughput and a whole
 * verified backup, with the binding (a copy of ssh2 built here, in the benchmark only) and without it
 * (the project's ssh2, which uses Node's own crypto), alternating in one run on the same sshd and MinIO.
 *
 *   node bench/ssh-native-crypto.ts          # BENCH_MIB=1024 (size of the file read/backed up), BENCH_ROUNDS=3
 *
 * The binding is built on node::ObjectWrap, which aborts Node 24.19+ when the garbage collector frees
 * one of its cipher objects (lib/native-addons.ts); each child makes one measurement and exits.
 * Results go to docs/benchmarks.md by hand.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cp, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { S3Client } from '@aws-sdk/client-s3';
import { createBackupService, createMemoryBackupStore } from '../activities/backups/index.ts';
import { createLogger } from '../lib/log.ts';
import { isObjectWrapAddon, loadedNativeAddons } from '../lib/native-addons.ts';
import { startMinio } from '../scripts/services/minio.ts';
import { cacheDir, rootDir } from '../lib/paths.ts';
import { freePort } from '../lib/process.ts';
import { startSshd } from '../test/support/sshd.ts';
import { parentOrChild } from './support/entry.ts';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const ciphers = ['aes128-gcm@openssh.com', 'chacha20-poly1305@openssh.com'] as const;

interface ChildInput {
  /** One measurement per child, so a child with the binding measures before any of its ciphers is garbage. */
  task: 'backup' | (typeof ciphers)[number];
  file: string;
  dir: string;
  ssh: { host: string; port: number; username: string; hostKey: string; privateKeyPath: string };
  s3: { endpoint: string; accessKeyId: string; secretAccessKey: string; bucket: string };
}
interface ChildOutput {
  native: boolean;
  seconds: number;
  cpuSeconds: number;
  /** Backups only: the streaming phase (tar+zstd → SSH → encrypt → upload). */
  streamingSeconds?: number;
  peakRssMiB: number;
}

/** In a child: read the file over SSH with one cipher, or back the tree up with the backup service. */
async function child(input: ChildInput): Promise<void> {
  const ssh = { ...input.ssh, privateKey: await readFile(input.ssh.privateKeyPath) };
  const cpu0 = process.cpuUsage();
  let started = performance.now();
  let streamingSeconds: number | undefined;
  if (input.task === 'backup') {
    const service = createBackupService({
      s3: new S3Client({ endpoint: input.s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: input.s3 }),
      bucket: input.s3.bucket, keyPrefix: `bench-${randomBytes(4).toString('hex')}/`,
      masterKeys: { bench: randomBytes(32) }, currentKeyId: 'bench', store: createMemoryBackupStore(),
      log: createLogger('bench', 'warn'), paths: [input.dir.slice(1)], stateDir: path.join(path.dirname(input.dir), `state-${process.pid}`),
      // What this benchmark compares is ssh2 with and without its binding, so the stream stays on ssh2.
      transport: 'ssh2',
    });
    let streamingStart = 0;
    await service.backup({
      userId: 'bench', ssh,
      onProgress: (p) => {
        if (p.phase === 'streaming' && streamingStart === 0) streamingStart = performance.now();
        if (p.phase === 'verifying' && streamingSeconds === undefined) streamingSeconds = (performance.now() - streamingStart) / 1000;
      },
    });
  } else {
    const { Client } = await import('ssh2');
    const client = new Client();
    await new Promise<void>((resolve, reject) => {
      client.once('ready', resolve).once('error', reject).connect({
        host: ssh.host, port: ssh.port, username: ssh.username, privateKey: ssh.privateKey, algorithms: { cipher: [input.task as (typeof ciphers)[number]] },
      });
    });
    started = performance.now();
    const bytes = await new Promise<number>((resolve, reject) => {
      client.exec(`cat ${input.file}`, (err, channel) => {
        if (err) return reject(err);
        let n = 0;
        channel.on('data', (d: Buffer) => { n += d.length; });
        channel.on('close', () => resolve(n));
      });
    });
    if (bytes !== (await stat(input.file)).size) throw new Error(`read ${bytes} bytes of ${input.file}`);
  }
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const peakRssMiB = Number(/VmHWM:\s+(\d+)/.exec(await readFile('/proc/self/status', 'utf8'))![1]) / 1024;
  const native = loadedNativeAddons().some((f) => f.endsWith('sshcrypto.node') && isObjectWrapAddon(f));
  const out: ChildOutput = { native, seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, peakRssMiB, ...(streamingSeconds !== undefined ? { streamingSeconds } : {}) };
  process.stdout.write(`${JSON.stringify(out)}\n`);
  process.exit(0);
}

/** A copy of the project's ssh2 with its native binding built (cached per ssh2 and Node version). */
async function nativeSsh2(): Promise<string> {
  const version = JSON.parse(await readFile(path.join(rootDir, 'node_modules/ssh2/package.json'), 'utf8')).version as string;
  const dir = path.join(cacheDir, 'bench', `ssh2-${version}-native-${process.version}`);
  const binding = path.join(dir, 'lib/protocol/crypto/build/Release/sshcrypto.node');
  if (await stat(binding).then(() => true, () => false)) return path.join(dir, 'lib/index.js');
  console.log(`building ssh2 ${version}'s native binding in a copy under the tool cache (benchmark only)...`);
  await rm(dir, { recursive: true, force: true });
  await mkdir(path.dirname(dir), { recursive: true });
  await cp(path.join(rootDir, 'node_modules/ssh2'), dir, { recursive: true });
  // npm ships node-gyp: next to npm's own CLI script, wherever npm is installed.
  const npmCli = (await run('bash', ['-c', 'readlink -f "$(command -v npm)"'])).stdout.trim();
  const gyp = path.join(path.dirname(npmCli), '..', 'node_modules/node-gyp/bin/node-gyp.js');
  await run(process.execPath, [gyp, `--target=${process.version}`, `--real_openssl_major=${/^\d+/.exec(process.versions.openssl)![0]}`, 'rebuild'],
    // binding.gyp asks `node -e "require('nan')"` for headers: nan is one of the project's packages.
    { cwd: path.join(dir, 'lib/protocol/crypto'), maxBuffer: 64 * MiB, env: { ...process.env, NODE_PATH: path.join(rootDir, 'node_modules') } });
  return path.join(dir, 'lib/index.js');
}

function runChild(input: ChildInput, nativeMain: string | null): Promise<{ out: ChildOutput; exit: string }> {
  return new Promise((resolve, reject) => {
    const args = [...(nativeMain ? ['--import', path.join(rootDir, 'bench/support/ssh2-native-hooks.ts')] : []), import.meta.filename, '--child'];
    const env = { ...process.env, ...(nativeMain ? { BENCH_SSH2_NATIVE_MAIN: nativeMain, NODE_PATH: path.join(rootDir, 'node_modules') } : {}) };
    const proc = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'], env });
    let stdout = '', stderr = '';
    proc.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    proc.stderr.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-2000); });
    proc.on('exit', (code, signal) => {
      const line = stdout.trim().split('\n').find((l) => l.startsWith('{'));
      if (!line) return reject(new Error(`child exited ${code ?? signal} without a result:\n${stderr}`));
      resolve({ out: JSON.parse(line) as ChildOutput, exit: signal ?? String(code) });
    });
    proc.stdin.end(JSON.stringify(input));
  });
}

async function main(): Promise<void> {
  const mib = Number(process.env.BENCH_MIB ?? '1024');
  const rounds = Number(process.env.BENCH_ROUNDS ?? '3');
  const nativeMain = await nativeSsh2();
  const dir = await mkdtemp(path.join(tmpdir(), 'berth-bench-ssh-'));
  const [sshd, minio] = await Promise.all([
    startSshd(),
    startMinio({ dataDir: path.join(dir, 'minio'), port: await freePort(), consolePort: await freePort(), accessKeyId: 'bench', secretAccessKey: 'bench-secret', buckets: ['bench'], sink: () => {} }),
  ]);
  try {
    // Half random (incompressible, like blobs), half base64 text (compressible, like logs); page-cached.
    const tree = path.join(dir, 'tree');
    await mkdir(tree);
    const file = path.join(tree, 'data.bin');
    await run('bash', ['-c', `head -c ${(mib / 2) * MiB} /dev/urandom > "$1" && head -c ${(mib * 3 / 8) * MiB} /dev/urandom | base64 -w 120 | head -c ${(mib / 2) * MiB} >> "$1" && cat "$1" > /dev/null`, 'bash', file]);
    const keyPath = path.join(dir, 'client_key');
    await writeFile(keyPath, sshd.target.privateKey, { mode: 0o600 });
    const input: Omit<ChildInput, 'task'> = {
      file, dir: tree, ssh: { ...sshd.target, privateKeyPath: keyPath },
      s3: { endpoint: minio.endpoint, accessKeyId: 'bench', secretAccessKey: 'bench-secret', bucket: 'bench' },
    };
    const loadBefore = loadavg();
    const tasks = [...ciphers, 'backup'] as const;
    const results: { task: ChildInput['task']; native: boolean; out: ChildOutput; exit: string }[] = [];
    for (let round = 0; round < rounds; round++) {
      for (const task of tasks) {
        for (const native of round % 2 === 0 ? [false, true] : [true, false]) {
          const { out, exit } = await runChild({ ...input, task }, native ? nativeMain : null);
          if (out.native !== native) throw new Error(`the child ${native ? 'with' : 'without'} the binding loaded ${out.native ? 'it' : 'none'}`);
          results.push({ task, native, out, exit });
          console.log(`round ${round + 1} ${(task.split('@')[0] ?? task).padEnd(17)} ${native ? 'native' : 'js    '}: ${out.seconds.toFixed(2)} s, exit ${exit}`);
        }
      }
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const of = (task: ChildInput['task'], native: boolean) => results.filter((r) => r.task === task && r.native === native).map((r) => r.out);
    console.log(`\nmachine: ${cpus().length} × ${cpus()[0]?.model}, Node ${process.version}; ${mib} MiB, ${rounds} rounds alternating; load average before ${loadBefore.map((l) => l.toFixed(2)).join(' ')}, after ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    console.log('| measure (median of rounds) | with native binding | without (Node crypto) | without ÷ with (time) |');
    console.log('|---|---|---|---|');
    for (const c of ciphers) {
      const secs = (native: boolean) => median(of(c, native).map((o) => o.seconds));
      const cpu = (native: boolean) => median(of(c, native).map((o) => o.cpuSeconds));
      const mbps = (native: boolean) => (mib * MiB / 1e6 / secs(native)).toFixed(0);
      console.log(`| SSH read of ${mib} MiB, ${c.split('@')[0]}: MB/s (client CPU s) | ${mbps(true)} (${cpu(true).toFixed(1)}) | ${mbps(false)} (${cpu(false).toFixed(1)}) | ${(secs(false) / secs(true)).toFixed(2)} |`);
    }
    const b = (native: boolean, k: 'seconds' | 'streamingSeconds' | 'cpuSeconds' | 'peakRssMiB') => median(of('backup', native).map((o) => o[k] ?? NaN));
    console.log(`| backup streaming phase, s | ${b(true, 'streamingSeconds').toFixed(1)} | ${b(false, 'streamingSeconds').toFixed(1)} | ${(b(false, 'streamingSeconds') / b(true, 'streamingSeconds')).toFixed(2)} |`);
    console.log(`| whole verified backup, s (worker CPU s) | ${b(true, 'seconds').toFixed(1)} (${b(true, 'cpuSeconds').toFixed(1)}) | ${b(false, 'seconds').toFixed(1)} (${b(false, 'cpuSeconds').toFixed(1)}) | ${(b(false, 'seconds') / b(true, 'seconds')).toFixed(2)} |`);
    console.log(`| backup peak RSS MiB | ${b(true, 'peakRssMiB').toFixed(0)} | ${b(false, 'peakRssMiB').toFixed(0)} | |`);
  } finally {
    await sshd.stop();
    await minio.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await parentOrChild<ChildInput>(main, child);

/**
 * Bulk streams (a backup's archive, a restore's objects) through the OpenSSH client. ssh2 without its
 * native binding (docs/decisions/011) reads ~43 MB/s with AES-GCM on the benchmark machine: it makes
 * an OpenSSL cipher per packet. OpenSSH moves 600–700 MB/s there. Control commands stay on ssh2.
 *
 * Pinning (invariant 7, docs/invariants.md) is the same as ssh2's: a known_hosts file holding only the
 * pinned ed25519 key, `StrictHostKeyChecking=yes`, only `ssh-ed25519` host keys negotiated. A pin
 * given as a fingerprint is turned into that line by scanning the server's key and keeping it only if
 * its fingerprint is the pinned one. The customer's private key never reaches a disk: it goes on stdin
 * to `ssh-add -` of an ssh-agent that serves this one operation from a socket in a 0700 directory, and
 * the agent ends with the operation, or with this process (it watches a pipe from it). Why an agent and
 * not a key file: docs/decisions/.
 */
import { execFile, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { ErrorType } from '../../lib/errors.ts';
import { sshFingerprint } from '../cloud/keys.ts';
import { backupFailure } from './errors.ts';
import type { SshTarget } from './ssh.ts';

const run = promisify(execFile);

/** A command running on the server, whichever SSH client carries it. */
export interface RemoteProcess {
  /** The command's standard output. */
  stdout: Readable;
  /** The command's standard input (a guarded command is ended when it closes). */
  stdin: Writable;
  stderr: Readable;
  /** The command's exit code; rejects (Transient) if it has none: connection dropped, killed. */
  exited(what: string, stderr: () => string): Promise<number>;
  /** Ends the command and its connection at once. */
  kill(): void;
}

/** Starts commands on one server for bulk streams; `close()` ends what it set up. */
export interface BulkTransport {
  kind: 'openssh' | 'ssh2';
  start(command: string): Promise<RemoteProcess>;
  close(): Promise<void>;
}

/** Strongest first; AES-GCM is hardware accelerated on every x86 and arm64 server Berth uses. */
const CIPHERS = 'aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com';

let clientTools: Promise<boolean> | undefined;

/** Whether this machine has the OpenSSH client, ssh-agent and ssh-add (checked once). */
export function openSshAvailable(): Promise<boolean> {
  clientTools ??= Promise.all([run('ssh', ['-V']), run('ssh-agent', ['-h']).catch((err: { code?: unknown }) => {
    // ssh-agent -h prints its usage and exits 1: present. ENOENT: absent.
    if (err.code === 'ENOENT') throw err;
  }), run('ssh-add', ['-h']).catch((err: { code?: unknown }) => {
    if (err.code === 'ENOENT') throw err;
  })]).then(() => true, () => false);
  return clientTools;
}

/**
 * The pinned host key as an OpenSSH known_hosts key ("ssh-ed25519 AAAA..."), or undefined if the pin
 * is not an ed25519 key. A pin given as a fingerprint ("SHA256:...") is looked up with ssh-keyscan and
 * accepted only if the scanned key has exactly that fingerprint; HostKeyMismatch if none has.
 */
export async function pinnedHostKeyLine(target: SshTarget): Promise<string | undefined> {
  const pin = target.hostKey.trim();
  if (pin.startsWith('SHA256:')) {
    const scanned = await run('ssh-keyscan', ['-T', '10', '-t', 'ed25519', '-p', String(target.port), target.host], { timeout: 20_000 })
      .then((r) => r.stdout, () => '');
    for (const line of scanned.split('\n')) {
      const [, type, blob] = line.trim().split(/\s+/);
      if (type === 'ssh-ed25519' && blob && sshFingerprint(Buffer.from(blob, 'base64')) === pin) return `${type} ${blob}`;
    }
    throw backupFailure(ErrorType.HostKeyMismatch, `${target.host}:${target.port} did not present the pinned host key ${pin} to ssh-keyscan`);
  }
  const [type, blob] = pin.split(/\s+/);
  return type === 'ssh-ed25519' && blob ? `${type} ${blob}` : undefined;
}

/** A private directory for the agent's socket and the known_hosts file; a tmpfs where there is one. */
async function privateDir(): Promise<string> {
  const base = process.env.XDG_RUNTIME_DIR && existsSync(process.env.XDG_RUNTIME_DIR) ? process.env.XDG_RUNTIME_DIR : tmpdir();
  return mkdtemp(path.join(base, 'berth-ssh-'));
}

/**
 * Sets up OpenSSH for one server: known_hosts with the pinned key, an agent holding the private key.
 * Each `start` is then one `ssh` process (one connection) running the command.
 */
export async function openOpenSsh(target: SshTarget, hostKeyLine: string): Promise<BulkTransport> {
  const dir = await privateDir();
  const knownHosts = path.join(dir, 'known_hosts');
  const socket = path.join(dir, 'agent');
  await writeFile(knownHosts, `${target.port === 22 ? target.host : `[${target.host}]:${target.port}`} ${hostKeyLine}\n`, { mode: 0o600 });
  // The agent lives as long as this watcher's stdin is open: closed by close(), or by the kernel if this process dies.
  const agent = spawn('sh', ['-c', 'ssh-agent -D -a "$1" >/dev/null 2>&1 & a=$!; cat >/dev/null; kill "$a" 2>/dev/null; wait "$a"; rm -rf -- "$2"', 'berth-agent', socket, dir],
    { stdio: ['pipe', 'ignore', 'ignore'] });
  const agentExited = new Promise<void>((resolve) => agent.once('close', () => resolve()));
  const close = async () => {
    agent.stdin.end();
    await agentExited;
  };
  try {
    for (let waited = 0; !existsSync(socket); waited += 10) {
      if (waited > 10_000 || agent.exitCode !== null) throw new Error('ssh-agent did not start');
      await sleep(10);
    }
    // The key goes through a pipe; -t bounds how long it could outlive an operation that hung.
    await new Promise<void>((resolve, reject) => {
      const add = spawn('ssh-add', ['-q', '-t', '18000', '-'], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', SSH_AUTH_SOCK: socket }, stdio: ['pipe', 'ignore', 'pipe'] });
      let err = '';
      add.stderr.on('data', (d: Buffer) => { err += d.toString(); });
      add.once('error', reject);
      add.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`ssh-add exited ${code}: ${err.trim()}`))));
      add.stdin.end(target.privateKey);
    });
  } catch (err) {
    await close();
    throw err;
  }
  const args = [
    '-F', '/dev/null', '-T', '-x', '-a', '-e', 'none', '-p', String(target.port), '-l', target.username,
    '-o', 'BatchMode=yes', '-o', 'IdentityFile=none', '-o', `IdentityAgent="${socket}"`, '-o', 'ForwardAgent=no', '-o', 'ClearAllForwardings=yes',
    '-o', `UserKnownHostsFile="${knownHosts}"`, '-o', 'GlobalKnownHostsFile=/dev/null', '-o', 'StrictHostKeyChecking=yes', '-o', 'UpdateHostKeys=no',
    '-o', 'CheckHostIP=no', '-o', 'HostKeyAlgorithms=ssh-ed25519', '-o', `Ciphers=${CIPHERS}`, '-o', 'Compression=no',
    '-o', 'ConnectTimeout=20', '-o', 'ServerAliveInterval=10', '-o', 'ServerAliveCountMax=3', '-o', 'LogLevel=ERROR',
  ];
  return {
    kind: 'openssh',
    async start(command) {
      const child: ChildProcessWithoutNullStreams = spawn('ssh', [...args, target.host, command], {
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? dir },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      // Writes after the command ended (EPIPE) surface as the exit status, not as an unhandled error.
      child.stdin.on('error', () => {});
      let spawnError: Error | undefined;
      const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
        child.once('error', (err) => { spawnError = err; });
        child.once('close', (code, signal) => resolve({ code, signal }));
      });
      return {
        stdout: child.stdout,
        stdin: child.stdin,
        stderr: child.stderr,
        async exited(what, stderr) {
          const { code, signal } = await closed;
          const detail = stderr() ? `: ${stderr()}` : '';
          if (spawnError) throw backupFailure(ErrorType.Transient, `${what}: could not run ssh: ${spawnError.message}`, spawnError);
          if (/Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED/.test(stderr())) {
            throw backupFailure(ErrorType.HostKeyMismatch, `${target.host}:${target.port} presented a host key other than the pinned one${detail}`);
          }
          // 255: ssh itself failed (connection refused or dropped, authentication) or the command died by a signal.
          if (code === null || code === 255) {
            throw backupFailure(ErrorType.Transient, `${what}: the SSH connection ended without an exit status (${signal ? `ssh ${signal}` : 'ssh exit 255'})${detail}`);
          }
          return code;
        },
        kill: () => { child.kill('SIGKILL'); },
      };
    },
    close,
  };
}

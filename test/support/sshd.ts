/**
 * A real OpenSSH sshd for tests and benchmarks: its own loopback address (127.0.0.x) and free port,
 * a host key and a client key generated now (never committed), started and stopped through
 * scripts/services/process.ts. Connect with the returned `target`: the host key is pinned.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort, portOpen, startProcess, type ManagedProcess } from '../../scripts/services/process.ts';
import type { SshTarget } from '../../activities/backups/ssh.ts';
import { errorMessage } from '../../lib/errors.ts';

const run = promisify(execFile);

export interface TestSshd {
  /** Connection details for root on this sshd, host key pinned. */
  target: SshTarget;
  /** The sshd process (its session processes are its children). */
  process: ManagedProcess;
  /** Scratch directory holding the keys and config. */
  dir: string;
  stop(): Promise<void>;
}

export interface StartSshdOptions {
  /** Extra lines for sshd_config. */
  config?: string[];
  /** Log sink; quiet by default. */
  sink?: (name: string, line: string) => void;
}

/** Starts sshd as root on 127.0.0.x with fresh keys; stop() ends it and removes the keys. */
export async function startSshd(opts: StartSshdOptions = {}): Promise<TestSshd> {
  // sshd's privilege separation needs this directory.
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  const dir = await mkdtemp(path.join(tmpdir(), 'berth-sshd-'));
  const hostKeyPath = path.join(dir, 'host_ed25519');
  const clientKeyPath = path.join(dir, 'client_ed25519');
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'berth-test-host', '-f', hostKeyPath]);
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'berth-test-client', '-f', clientKeyPath]);
  await writeFile(path.join(dir, 'authorized_keys'), await readFile(`${clientKeyPath}.pub`), { mode: 0o600 });

  let lastError: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    const host = `127.0.0.${10 + Math.floor(Math.random() * 240)}`;
    const port = await freePort();
    const configPath = path.join(dir, 'sshd_config');
    await writeFile(configPath, [
      `ListenAddress ${host}:${port}`,
      `HostKey ${hostKeyPath}`,
      `PidFile ${path.join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
      'PermitRootLogin prohibit-password',
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      'MaxStartups 50',
      'LogLevel ERROR',
      ...(opts.config ?? []),
      '',
    ].join('\n'));
    try {
      const proc = await startProcess({
        name: 'sshd',
        command: '/usr/sbin/sshd',
        args: ['-D', '-e', '-f', configPath],
        ready: () => portOpen(port, host),
        readyTimeoutMs: 10_000,
        stopTimeoutMs: 5_000,
        sink: opts.sink ?? (() => {}),
      });
      const hostKey = (await readFile(`${hostKeyPath}.pub`, 'utf8')).trim();
      return {
        target: { host, port, username: 'root', privateKey: await readFile(clientKeyPath), hostKey },
        process: proc,
        dir,
        async stop() {
          await proc.stop();
          await rm(dir, { recursive: true, force: true });
        },
      };
    } catch (err) {
      lastError = err; // most likely the address/port was taken meanwhile: try another
    }
  }
  await rm(dir, { recursive: true, force: true });
  throw new Error(`could not start sshd: ${errorMessage(lastError)}`);
}

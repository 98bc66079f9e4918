/**
 * A real OpenSSH sshd for tests and benchmarks: its own loopback address (127.0.0.x) and free port,
 * a host key and a client key generated now (never committed), started and stopped through
 * scripts/services/process.ts. Connect with the returned `target`: the host key is pinned.
 *
 * By default the login is an unprivileged account, as on production servers (the `berth` user of
 * activities/cloud/user-data.ts): sshd runs in its own mount namespace whose /etc/passwd, group and
 * shadow add that account, so the host's account files are never touched. `login: 'root'` logs in
 * as root instead.
 */
import { execFile } from 'node:child_process';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort, portOpen, startProcess, type ManagedProcess } from '../../scripts/services/process.ts';
import type { SshTarget } from '../../activities/backups/ssh.ts';
import { errorMessage } from '../../lib/errors.ts';

const run = promisify(execFile);

/** The unprivileged account tests log in as: a uid no host account uses, its own group. */
export const testAccount = { name: 'berth', uid: 61_001, gid: 61_001 } as const;

export interface TestSshd {
  /** Connection details for the login account on this sshd, host key pinned. */
  target: SshTarget;
  /** Who `target` logs in as; files the tests prepare for it must be its own (or readable). */
  account: { name: string; uid: number; gid: number; home: string };
  /** The sshd process (its session processes are its children). */
  process: ManagedProcess;
  /** Scratch directory holding the keys and config. */
  dir: string;
  stop(): Promise<void>;
}

export interface StartSshdOptions {
  /** Who logs in: the unprivileged test account (default, as production) or root. */
  login?: 'account' | 'root';
  /** Extra lines for sshd_config. */
  config?: string[];
  /** Log sink; quiet by default. */
  sink?: (name: string, line: string) => void;
}

/** Account files of the sshd's namespace: the host's, plus the test account with a usable (not locked) entry. */
async function accountFiles(dir: string, home: string): Promise<{ passwd: string; group: string; shadow: string }> {
  const { name, uid, gid } = testAccount;
  const without = (text: string) => text.split('\n').filter((l) => l && l.split(':')[0] !== name);
  const files = {
    passwd: path.join(dir, 'passwd'),
    group: path.join(dir, 'group'),
    shadow: path.join(dir, 'shadow'),
  };
  await writeFile(files.passwd, [...without(await readFile('/etc/passwd', 'utf8')), `${name}:x:${uid}:${gid}:Berth test:${home}:/bin/bash`, ''].join('\n'), { mode: 0o644 });
  await writeFile(files.group, [...without(await readFile('/etc/group', 'utf8')), `${name}:x:${gid}:`, ''].join('\n'), { mode: 0o644 });
  // "*": no password, yet not locked, so key logins work with UsePAM off.
  await writeFile(files.shadow, [...without(await readFile('/etc/shadow', 'utf8')), `${name}:*:19000:0:99999:7:::`, ''].join('\n'), { mode: 0o640 });
  return files;
}

/** Starts sshd on 127.0.0.x with fresh keys; stop() ends it and removes the keys. */
export async function startSshd(opts: StartSshdOptions = {}): Promise<TestSshd> {
  const asRoot = opts.login === 'root';
  // sshd's privilege separation needs this directory.
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  const dir = await mkdtemp(path.join(tmpdir(), 'berth-sshd-'));
  // The account reads its authorized_keys (a public key) and lives in home/; the private keys stay 0600.
  await chmod(dir, 0o711);
  const home = asRoot ? '/root' : path.join(dir, 'home');
  const hostKeyPath = path.join(dir, 'host_ed25519');
  const clientKeyPath = path.join(dir, 'client_ed25519');
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'berth-test-host', '-f', hostKeyPath]);
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'berth-test-client', '-f', clientKeyPath]);
  await writeFile(path.join(dir, 'authorized_keys'), await readFile(`${clientKeyPath}.pub`), { mode: 0o644 });
  let namespace: string[] = [];
  if (!asRoot) {
    await mkdir(home, { mode: 0o700 });
    await chown(home, testAccount.uid, testAccount.gid);
    const files = await accountFiles(dir, home);
    namespace = ['unshare', '--mount', '--propagation', 'private', '--', '/bin/sh', '-c',
      'mount --bind "$1" /etc/passwd && mount --bind "$2" /etc/group && mount --bind "$3" /etc/shadow && shift 3 && exec "$@"',
      'sshd-namespace', files.passwd, files.group, files.shadow];
  }

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
      'MaxSessions 50',
      'LogLevel ERROR',
      ...(opts.config ?? []),
      '',
    ].join('\n'));
    const sshd = ['/usr/sbin/sshd', '-D', '-e', '-f', configPath];
    const [command, ...args] = [...namespace, ...sshd] as [string, ...string[]];
    try {
      const proc = await startProcess({
        name: 'sshd',
        // unshare and sh exec into sshd: the managed pid is sshd's, its sessions are its children.
        command,
        args,
        ready: () => portOpen(port, host),
        readyTimeoutMs: 10_000,
        stopTimeoutMs: 5_000,
        sink: opts.sink ?? (() => {}),
      });
      const hostKey = (await readFile(`${hostKeyPath}.pub`, 'utf8')).trim();
      const account = asRoot ? { name: 'root', uid: 0, gid: 0, home } : { ...testAccount, home };
      return {
        target: { host, port, username: account.name, privateKey: await readFile(clientKeyPath), hostKey },
        account,
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

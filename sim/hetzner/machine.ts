import { execFile, spawn } from 'node:child_process';
import { promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../../lib/log.ts';
import { startProcess, portOpen, type ManagedProcess } from '../../lib/process.ts';
import { runcmdScript, type CloudConfig } from './cloud-init.ts';

const exec = promisify(execFile);

/**
 * Inside each server's mount namespace its directory is bound here first, so the later binds over
 * /home, /root, /tmp... can never hide the server's own files (the data dir may live under /tmp).
 */
const inside = '/run/berth-sim/server';
const disk = `${inside}/disk`;
/** Directories of a server's disk that appear at the same path inside the server. */
export const serverDirs = ['home', 'root', 'opt', 'srv', 'tmp', 'var/lib/cloud'] as const;
const accountFiles = ['passwd', 'group', 'shadow'] as const;

/** Host prerequisites, once per process: sshd's privilege-separation dir and the bind mountpoints. */
export async function prepareHost(): Promise<void> {
  await fs.mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  await fs.mkdir(inside, { recursive: true });
  for (const d of serverDirs) await fs.mkdir(`/${d}`, { recursive: true });
  try {
    await exec('unshare', ['--mount', '--propagation', 'private', 'true']);
  } catch (err) {
    throw new Error(`the local cloud needs mount namespaces (root with CAP_SYS_ADMIN): ${(err as Error).message}`);
  }
}

/** A fresh system-image disk: the host's system accounts, empty homes, no host keys. */
export async function createBaseDisk(diskDir: string): Promise<void> {
  for (const d of serverDirs) await fs.mkdir(path.join(diskDir, d), { recursive: true });
  await fs.chmod(path.join(diskDir, 'root'), 0o700);
  await fs.chmod(path.join(diskDir, 'tmp'), 0o1777);
  await fs.mkdir(path.join(diskDir, 'etc/ssh'), { recursive: true });
  const system = (file: string, uidField: number) =>
    readFileSync(`/etc/${file}`, 'utf8').split('\n').filter((line) => {
      const id = Number(line.split(':')[uidField]);
      return line && (id < 1000 || id === 65534);
    });
  const passwd = system('passwd', 2);
  await fs.writeFile(path.join(diskDir, 'etc/passwd'), passwd.join('\n') + '\n', { mode: 0o644 });
  await fs.writeFile(path.join(diskDir, 'etc/group'), system('group', 2).join('\n') + '\n', { mode: 0o644 });
  // "*": no password, yet not locked, so key logins work with UsePAM off.
  const shadow = passwd.map((l) => `${l.split(':')[0]}:*:19000:0:99999:7:::`);
  await fs.writeFile(path.join(diskDir, 'etc/shadow'), shadow.join('\n') + '\n', { mode: 0o640 });
}

export interface MachineOptions {
  id: number;
  ip: string;
  sshPort: number;
  /** The server's folder: `disk/` (what snapshots keep) and `sshd_config`. */
  dir: string;
  log: Logger;
}

/** One simulated server: a real sshd in its own mount namespace with its own accounts and homes. */
export class Machine {
  readonly opts: MachineOptions;
  private proc: ManagedProcess | undefined;
  private mountNs: string | undefined;
  private background: Promise<void> = Promise.resolve();

  constructor(opts: MachineOptions) {
    this.opts = opts;
  }

  get diskDir(): string {
    return path.join(this.opts.dir, 'disk');
  }

  get running(): boolean {
    return this.proc !== undefined;
  }

  /** First boot of a new instance: copy the image, then apply cloud-init's per-instance steps. */
  async install(imageDisk: string, config: CloudConfig, rootKeys: string[]): Promise<void> {
    await fs.mkdir(this.opts.dir, { recursive: true });
    await exec('cp', ['-a', imageDisk, this.diskDir]);
    const d = this.diskDir;
    await fs.rm(path.join(d, 'var/lib/cloud/instance'), { recursive: true, force: true });
    await fs.mkdir(path.join(d, 'var/lib/cloud/instance/scripts'), { recursive: true });
    await fs.mkdir(path.join(d, 'var/lib/cloud/scripts/per-boot'), { recursive: true });
    const sshDir = path.join(d, 'etc/ssh');
    await fs.mkdir(sshDir, { recursive: true });
    if (config.deleteImageHostKeys) {
      for (const f of await fs.readdir(sshDir)) if (f.startsWith('ssh_host_')) await fs.rm(path.join(sshDir, f));
    }
    for (const [name, value] of Object.entries(config.hostKeys)) {
      const m = name.match(/^(rsa|ecdsa|ed25519)_(private|public)$/);
      if (!m) continue;
      const file = path.join(sshDir, `ssh_host_${m[1]}_key${m[2] === 'public' ? '.pub' : ''}`);
      await fs.writeFile(file, value.endsWith('\n') ? value : value + '\n', { mode: m[2] === 'private' ? 0o600 : 0o644 });
    }
    if (!(await fs.readdir(sshDir)).some((f) => /^ssh_host_.*_key$/.test(f))) {
      await exec('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `server-${this.opts.id}`, '-f', path.join(sshDir, 'ssh_host_ed25519_key')]);
    }
    // Hetzner puts the project keys named at create time into root's authorized_keys.
    if (rootKeys.length) await this.appendKeys('root', '/root', rootKeys);
    for (const user of config.users) await this.addUser(user.name, user.ssh_authorized_keys ?? [], user.shell, user.homedir, user.gecos);
    for (const file of config.writeFiles) await this.writeFile(file);
    const firstBoot = [config.runcmd.length ? runcmdScript(config.runcmd) : '', config.script ?? ''].filter(Boolean);
    for (const [i, script] of firstBoot.entries()) {
      await fs.writeFile(path.join(d, `var/lib/cloud/instance/scripts/${i === 0 && config.runcmd.length ? 'runcmd' : 'user-data'}`), script, { mode: 0o700 });
    }
    await this.writeSshdConfig(config.disableRoot);
  }

  async writeSshdConfig(disableRoot: boolean): Promise<void> {
    const keys = (await fs.readdir(path.join(this.diskDir, 'etc/ssh'))).filter((f) => /^ssh_host_.*_key$/.test(f));
    const lines = [
      `ListenAddress ${this.opts.ip}:${this.opts.sshPort}`,
      ...keys.map((k) => `HostKey ${disk}/etc/ssh/${k}`),
      'PidFile none',
      'UsePAM no',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      `PermitRootLogin ${disableRoot ? 'no' : 'prohibit-password'}`,
      'AuthorizedKeysFile .ssh/authorized_keys',
      'StrictModes yes',
      'AllowTcpForwarding yes',
      'X11Forwarding no',
      'PrintMotd no',
      'Subsystem sftp internal-sftp',
      'LogLevel INFO',
    ];
    await fs.writeFile(path.join(this.opts.dir, 'sshd_config'), lines.join('\n') + '\n', { mode: 0o644 });
  }

  /** Boots: sshd answers on ip:port; then first-boot scripts (once) and per-boot scripts run. */
  async start(): Promise<void> {
    if (this.proc) return;
    const boot = [
      'set -e',
      `mount --bind "$1" ${inside}`,
      ...serverDirs.map((d) => `mount --bind ${disk}/${d} /${d}`),
      ...accountFiles.map((f) => `mount --bind ${disk}/etc/${f} /etc/${f}`),
      `exec /usr/sbin/sshd -D -e -f ${inside}/sshd_config`,
    ].join('\n');
    const { ip, sshPort, log, id } = this.opts;
    const start = () => startProcess({
      name: `sshd-${id}`,
      command: 'unshare',
      args: ['--mount', '--propagation', 'private', '--', '/bin/sh', '-c', boot, 'boot', this.opts.dir],
      ready: () => portOpen(sshPort, ip),
      readyTimeoutMs: 15_000,
      stopTimeoutMs: 3000,
      sink: (name, line) => log.debug({ server: id }, `${name}: ${line}`),
    });
    // A server powered off and on again at once can find its address still held by the sshd it just
    // stopped (sockets linger a moment): a real machine boots for longer; try again shortly.
    for (let attempt = 1; ; attempt++) {
      try {
        this.proc = await start();
        break;
      } catch (err) {
        this.proc = undefined;
        if (attempt >= 4) throw err;
        log.debug({ server: id, attempt }, 'sshd did not come up; trying again');
        await new Promise((resolve) => setTimeout(resolve, 500 * attempt));
      }
    }
    this.mountNs = await fs.readlink(`/proc/${this.proc.pid}/ns/mnt`);
    this.background = this.runBootScripts();
  }

  /** Power off (hard) or shut down (graceful): sshd and every process inside the server end. */
  async stop(graceful: boolean): Promise<void> {
    const proc = this.proc;
    if (!proc) return;
    await proc.stop();
    await this.killInside(graceful ? 'SIGTERM' : 'SIGKILL');
    await this.background.catch(() => undefined);
    this.proc = undefined;
    this.mountNs = undefined;
  }

  /** Delete: stop, then remove the server's files. */
  async destroy(): Promise<void> {
    await this.stop(false);
    await fs.rm(this.opts.dir, { recursive: true, force: true });
  }

  /** Copies the disk (a snapshot); the server may be running, as on Hetzner. */
  async snapshotTo(imageDisk: string): Promise<void> {
    await fs.mkdir(path.dirname(imageDisk), { recursive: true });
    await exec('cp', ['-a', this.diskDir, imageDisk]);
  }

  private async runBootScripts(): Promise<void> {
    const d = this.diskDir;
    const finished = path.join(d, 'var/lib/cloud/instance/boot-finished');
    const scripts: string[] = [];
    if (!(await exists(finished))) {
      for (const name of ['runcmd', 'user-data']) {
        if (await exists(path.join(d, 'var/lib/cloud/instance/scripts', name))) scripts.push(`/var/lib/cloud/instance/scripts/${name}`);
      }
    }
    const perBoot = path.join(d, 'var/lib/cloud/scripts/per-boot');
    for (const f of (await fs.readdir(perBoot).catch(() => [] as string[])).sort()) scripts.push(`/var/lib/cloud/scripts/per-boot/${f}`);
    const output = await fs.open(path.join(d, 'var/lib/cloud/instance/output.log'), 'a');
    try {
      for (const script of scripts) {
        const code = await this.execInside(['/bin/sh', script], output.fd);
        this.opts.log.info({ server: this.opts.id, script, code }, 'cloud-init script finished');
      }
      if (!(await exists(finished))) await fs.writeFile(finished, `${new Date().toISOString()}\n`);
    } finally {
      await output.close();
    }
  }

  /** Runs a command as root inside the server (its homes and accounts), like cloud-init does. */
  execInside(argv: string[], outFd?: number): Promise<number | null> {
    if (!this.proc) return Promise.reject(new Error(`server ${this.opts.id} is not running`));
    const child = spawn('nsenter', [`--mount=/proc/${this.proc.pid}/ns/mnt`, '--', ...argv], {
      cwd: '/',
      env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/root', LANG: 'C.UTF-8' },
      stdio: ['ignore', outFd ?? 'ignore', outFd ?? 'ignore'],
      detached: true,
    });
    return new Promise((resolve) => {
      child.once('error', () => resolve(null));
      child.once('exit', (code) => resolve(code));
    });
  }

  /** Kills by pid every process still in this server's mount namespace (sessions, daemons from runcmd). */
  private async killInside(signal: NodeJS.Signals): Promise<void> {
    const ns = this.mountNs;
    if (!ns) return;
    for (let round = 0; round < 20; round++) {
      const pids: number[] = [];
      for (const entry of await fs.readdir('/proc')) {
        if (!/^\d+$/.test(entry)) continue;
        const link = await fs.readlink(`/proc/${entry}/ns/mnt`).catch(() => undefined);
        if (link === ns) pids.push(Number(entry));
      }
      if (!pids.length) return;
      for (const pid of pids) {
        try {
          process.kill(pid, round < 5 ? signal : 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
      await sleep(100);
    }
  }

  private async appendKeys(owner: string, home: string, keys: string[]): Promise<void> {
    const { uid, gid } = await this.account(owner);
    const sshDir = this.diskPath(`${home}/.ssh`);
    await fs.mkdir(sshDir, { recursive: true, mode: 0o700 });
    await fs.chown(sshDir, uid, gid);
    const file = path.join(sshDir, 'authorized_keys');
    await fs.appendFile(file, keys.map((k) => k.trim() + '\n').join(''), { mode: 0o600 });
    await fs.chown(file, uid, gid);
  }

  private async addUser(name: string, keys: string[], shell = '/bin/bash', homedir?: string, gecos = ''): Promise<void> {
    if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(name)) throw new Error(`invalid user name ${name}`);
    const passwdFile = path.join(this.diskDir, 'etc/passwd');
    const lines = (await fs.readFile(passwdFile, 'utf8')).split('\n').filter(Boolean);
    const home = homedir ?? (name === 'root' ? '/root' : `/home/${name}`);
    if (!lines.some((l) => l.startsWith(`${name}:`))) {
      const used = new Set(lines.map((l) => Number(l.split(':')[2])));
      let uid = 1000;
      while (used.has(uid)) uid++;
      await fs.appendFile(passwdFile, `${name}:x:${uid}:${uid}:${gecos}:${home}:${shell}\n`);
      await fs.appendFile(path.join(this.diskDir, 'etc/group'), `${name}:x:${uid}:\n`);
      await fs.appendFile(path.join(this.diskDir, 'etc/shadow'), `${name}:*:19000:0:99999:7:::\n`);
      const dir = this.diskPath(home);
      await fs.mkdir(dir, { recursive: true, mode: 0o750 });
      await fs.chown(dir, uid, uid);
    }
    if (keys.length) await this.appendKeys(name, home, keys);
  }

  private async writeFile(file: { path: string; content?: string; encoding?: string; permissions?: string; owner?: string; append?: boolean }): Promise<void> {
    let data: Buffer = Buffer.from(file.content ?? '', 'utf8');
    const enc = (file.encoding ?? 'text').toLowerCase();
    if (['b64', 'base64'].includes(enc)) data = Buffer.from(file.content ?? '', 'base64');
    else if (['gz+b64', 'gzip+base64', 'gz+base64', 'gzip+b64'].includes(enc)) data = gunzipSync(Buffer.from(file.content ?? '', 'base64'));
    const target = this.diskPath(file.path);
    await fs.mkdir(path.dirname(target), { recursive: true });
    if (file.append) await fs.appendFile(target, data);
    else await fs.writeFile(target, data);
    await fs.chmod(target, parseInt(file.permissions ?? '0644', 8));
    const [user = 'root', group] = (file.owner ?? 'root:root').split(':');
    const owner = await this.account(user);
    const groupId = group ? (await this.groupId(group)) ?? owner.gid : owner.gid;
    await fs.chown(target, owner.uid, groupId);
  }

  /**
   * Where a path inside the server lives on its disk. Paths under the server's own directories map
   * one to one; any other path (/etc/systemd/..., /usr/local/...) is kept under `disk/fs/` so the host
   * stays untouched: it is stored and snapshotted, but not visible at that path inside the server.
   */
  private diskPath(p: string): string {
    const normal = path.posix.normalize(p);
    if (!normal.startsWith('/') || normal.includes('..')) throw new Error(`path must be absolute: ${p}`);
    if (accountFiles.some((f) => normal === `/etc/${f}`)) throw new Error(`the local cloud manages ${normal} itself`);
    const own = serverDirs.some((d) => normal === `/${d}` || normal.startsWith(`/${d}/`)) || normal.startsWith('/etc/ssh/');
    return path.join(this.diskDir, own ? normal : path.join('fs', normal));
  }

  private async account(name: string): Promise<{ uid: number; gid: number }> {
    const passwd = await fs.readFile(path.join(this.diskDir, 'etc/passwd'), 'utf8');
    const line = passwd.split('\n').find((l) => l.startsWith(`${name}:`));
    if (!line) throw new Error(`no user ${name} on server ${this.opts.id}`);
    const [, , uid, gid] = line.split(':');
    return { uid: Number(uid), gid: Number(gid) };
  }

  private async groupId(name: string): Promise<number | undefined> {
    const group = await fs.readFile(path.join(this.diskDir, 'etc/group'), 'utf8');
    const line = group.split('\n').find((l) => l.startsWith(`${name}:`));
    return line ? Number(line.split(':')[2]) : undefined;
  }
}

async function exists(p: string): Promise<boolean> {
  return fs.access(p).then(() => true, () => false);
}

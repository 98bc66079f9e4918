/**
 * The little SSH the backup pipeline needs: a connection that verifies a pinned host key
 * (invariant 7, docs/invariants.md; ssh2 accepts any key unless told not to) and `exec` channels. Bulk data
 * goes through exec stdin/stdout, never SFTP (4–12× slower in ssh2).
 */
import type { Readable } from 'node:stream';
import { Client, type ClientChannel } from 'ssh2';
import { ErrorType } from '../../lib/errors.ts';
import { backupFailure } from './errors.ts';
import type { BulkTransport } from './openssh.ts';

export interface SshTarget {
  host: string;
  port: number;
  username: string;
  privateKey: Buffer | string;
  /** The server's pinned public host key as OpenSSH writes it: "ssh-ed25519 AAAA... [comment]". */
  hostKey: string;
}

/** Opens a connection to a server; the backup service takes one so tests and the worker choose how. */
export type SshConnect = (target: SshTarget) => Promise<Client>;

/** The raw key blob of an OpenSSH public key line, which is what ssh2 hands to hostVerifier. */
export function hostKeyBlob(openSshLine: string): Buffer {
  const blob = openSshLine.trim().split(/\s+/)[1];
  if (!blob) throw backupFailure(ErrorType.Misconfigured, 'pinned host key is not an OpenSSH public key line');
  return Buffer.from(blob, 'base64');
}

/** Connects with the host key pinned: any other key fails with HostKeyMismatch before auth. */
export const connectSsh: SshConnect = (target) => {
  const pinned = hostKeyBlob(target.hostKey);
  return new Promise((resolve, reject) => {
    const client = new Client();
    let rejectedKey = false;
    client.once('ready', () => resolve(client));
    client.once('error', (err) => {
      client.end();
      reject(rejectedKey
        ? backupFailure(ErrorType.HostKeyMismatch, `${target.host}:${target.port} presented a host key other than the pinned one`, err)
        : backupFailure(ErrorType.Transient, `SSH to ${target.host}:${target.port} failed: ${err.message}`, err));
    });
    client.connect({
      host: target.host,
      port: target.port,
      username: target.username,
      privateKey: target.privateKey,
      readyTimeout: 20_000,
      keepaliveInterval: 10_000,
      keepaliveCountMax: 3,
      // AES-GCM first: hardware accelerated, the fastest ssh2 offers on x86.
      algorithms: { cipher: ['aes128-gcm@openssh.com', 'aes256-gcm@openssh.com', 'chacha20-poly1305@openssh.com', 'aes128-ctr'] },
      hostVerifier: (key: Buffer) => {
        const ok = key.equals(pinned);
        rejectedKey = !ok;
        return ok;
      },
    });
  });
};

/** Single-quotes a word for the remote POSIX shell. */
export function shq(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/** How a command on a channel ended, as far as known: recorded from the moment the channel exists. */
interface ExitRecord {
  code?: number;
  signal?: string;
  closed: boolean;
}
const exits = new WeakMap<ClientChannel, ExitRecord>();

/**
 * Records a channel's exit as soon as ssh2 reports it. A quick command's exit status can arrive in the
 * same read as the exec confirmation: ssh2 then emits `exit` before a caller awaiting the channel has
 * run again, and a listener attached after the await would never hear it.
 */
function trackExit(channel: ClientChannel): ExitRecord {
  const record: ExitRecord = { closed: false };
  exits.set(channel, record);
  channel.once('exit', (c: number | null, s?: string) => {
    if (typeof c === 'number') record.code = c;
    else record.signal = s ?? 'unknown signal';
  });
  channel.once('close', () => { record.closed = true; });
  return record;
}

/**
 * How a command runs unless it reads the channel's input: in a session (and process group) of its own
 * that lives only as long as the channel. A watcher reads the channel's input, which the worker never closes
 * while it wants the command; when it closes (the worker aborted the attempt, crashed, or lost the
 * connection) the whole group gets SIGTERM, then SIGKILL. Without this a non-terminal SSH session's
 * processes outlive their channel (sshd sends them no hangup) and keep working for an attempt that
 * is gone. The command's exit status (or death by a signal) is passed on as its own.
 */
const GUARD = [
  'setsid bash -c "$1" berth </dev/null & cmd=$!',
  // A background job's input would be /dev/null: the watcher takes the channel's explicitly.
  `setsid bash -c 'cat >/dev/null; kill -TERM -- "-$1"; sleep 10; kill -KILL -- "-$1"' watch "$cmd" <&0 >/dev/null 2>&1 & watch=$!`,
  'wait "$cmd" 2>/dev/null; rc=$?',
  'kill -- "-$watch" 2>/dev/null',
  'if [ "$rc" -gt 128 ]; then kill -s "$(kill -l "$rc")" $$; fi',
  'exit "$rc"',
].join('\n');

/** A command line for the server: `command` itself if it reads its input, otherwise guarded (see GUARD). */
export function guardedCommand(command: string, opts: { input?: boolean } = {}): string {
  return opts.input ? command : `bash -c ${shq(GUARD)} berth-guard ${shq(command)}`;
}

/**
 * Starts `command` on the server; the channel's stdout carries its output. With `input: true` the
 * command reads the channel's stdin (it then ends when its input ends); otherwise it is guarded: the
 * caller must not end the channel's input while it wants the command, and ending it, destroying the
 * channel or losing the connection terminates the command and everything it started.
 */
export function execChannel(client: Client, command: string, opts: { input?: boolean } = {}): Promise<ClientChannel> {
  const line = guardedCommand(command, opts);
  return new Promise((resolve, reject) => {
    client.exec(line, (err, channel) => {
      if (err) return reject(backupFailure(ErrorType.Transient, `SSH exec failed: ${err.message}`, err));
      trackExit(channel);
      resolve(channel);
    });
  });
}

/**
 * Resolves with the remote exit code once the channel closes; rejects if it closed without one
 * (connection dropped, process killed by a signal) so a cut-off stream never passes for a whole one.
 */
export function exitOf(channel: ClientChannel, what: string, stderr: () => string): Promise<number> {
  const record = exits.get(channel) ?? trackExit(channel);
  return new Promise((resolve, reject) => {
    const settle = () => {
      if (record.code !== undefined) resolve(record.code);
      else reject(backupFailure(ErrorType.Transient, `${what}: the SSH channel closed without an exit status${record.signal ? ` (signal ${record.signal})` : ' (connection dropped?)'}${stderr() ? `: ${stderr()}` : ''}`));
    };
    if (record.closed) settle();
    else channel.once('close', settle);
  });
}

/** Collects a channel's (or a process's) stderr, bounded, for error messages. */
export function collectStderr(from: ClientChannel | Readable, limit = 8192): () => string {
  let text = '';
  const stderr = 'stderr' in from ? from.stderr : from;
  stderr.on('data', (d: Buffer) => {
    if (text.length < limit) text += d.toString('utf8').slice(0, limit - text.length);
  });
  return () => text.trim();
}

/** A `tar --checkpoint-action=echo=...` line; `%u` is tar's record count (10 KiB records by default). */
export const TAR_PROGRESS_MARK = 'berth-progress:';
/** tar options that report progress on stderr (every 1024 records ≈ 10 MiB) and the archive's size at the end. */
export const TAR_PROGRESS_OPTIONS = `--totals --checkpoint=1024 --checkpoint-action=echo=${TAR_PROGRESS_MARK}%u`;
const TAR_RECORD_BYTES = 10240;

/** The line the backup script ends with on stderr: each pipeline member's exit status ("berth-exit: tar=1 tee=0 ..."). */
export const EXIT_REPORT_MARK = 'berth-exit:';

/**
 * Reads tar's stderr: progress lines (uncompressed archive bytes so far) go to `onBytes`, the
 * `--totals` line gives the archive's size, an {@link EXIT_REPORT_MARK} line the pipeline's exit
 * statuses, and everything else is kept (bounded) for error messages and the manifest's warnings.
 */
export function watchTarStderr(stderr: Readable, onBytes: (archiveBytes: number) => void, limit = 8192): {
  text: () => string; archiveBytes: () => number | undefined; exits: () => Record<string, number> | undefined;
} {
  let text = '';
  let partial = '';
  let total: number | undefined;
  let exits: Record<string, number> | undefined;
  stderr.on('data', (d: Buffer) => {
    const lines = (partial + d.toString('utf8')).split('\n');
    // A line without end (the server's shell printing without newlines) is cut, not kept growing.
    partial = (lines.pop() ?? '').slice(-maxLineBytes);
    for (const line of lines) {
      const mark = line.indexOf(TAR_PROGRESS_MARK);
      const totals = /Total bytes written: (\d+)/.exec(line);
      if (mark >= 0) onBytes(Number(line.slice(mark + TAR_PROGRESS_MARK.length)) * TAR_RECORD_BYTES);
      else if (totals) total = Number(totals[1]);
      else if (line.startsWith(EXIT_REPORT_MARK)) {
        exits = Object.fromEntries(line.slice(EXIT_REPORT_MARK.length).trim().split(/\s+/).map((kv) => kv.split('=') as [string, string])
          .map(([k, v]) => [k, Number(v)]));
      } else if (text.length < limit) text += `${line.slice(0, limit - text.length)}\n`;
    }
  });
  return { text: () => (text + (text.length < limit ? partial.slice(0, limit - text.length) : '')).trim(), archiveBytes: () => total, exits: () => exits };
}

/** The longest line of tar's stderr kept while waiting for its end. */
const maxLineBytes = 64 * 1024;

/**
 * Most stdout a command's result may hold, unless the caller says otherwise. The customer controls
 * their server, shell startup files included, so its output is hostile until proven small: past the
 * limit the channel is closed and the command fails (Transient: the server may behave next time).
 */
export const defaultOutputLimit = 1024 * 1024;

/** Runs a command to completion, returning its exit code and output (stdout as bytes, at most `limit`). */
export async function runRemote(client: Client, command: string, limit = defaultOutputLimit): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  const channel = await execChannel(client, command);
  const stderr = collectStderr(channel);
  const chunks: Buffer[] = [];
  let received = 0;
  let overflow = false;
  channel.on('data', (d: Buffer) => {
    if (overflow) return;
    received += d.length;
    if (received <= limit) return void chunks.push(d);
    overflow = true;
    chunks.length = 0;
    channel.close();
  });
  const what = command.split(' ')[0] ?? 'command';
  const code = await exitOf(channel, what, stderr).catch((err: unknown) => {
    if (overflow) return -1;
    throw err;
  });
  if (overflow) throw backupFailure(ErrorType.Transient, `${what}: the server wrote more than ${limit} bytes (do its shell startup files print?)`);
  return { code, stdout: Buffer.concat(chunks), stderr: stderr() };
}

/** Runs a command that must succeed; its failure is Transient unless `type` says otherwise. Output past `limit` fails it. */
export async function mustRun(client: Client, command: string, what: string, type: ErrorType = ErrorType.Transient, limit = defaultOutputLimit): Promise<Buffer> {
  const result = await runRemote(client, command, limit);
  if (result.code !== 0) throw backupFailure(type, `${what} failed (exit ${result.code})${result.stderr ? `: ${result.stderr}` : ''}`);
  return result.stdout;
}

/**
 * Bulk streams over the ssh2 connection itself: what runs where the OpenSSH client cannot (no `ssh`
 * on the worker, a pin that is not an ed25519 key). Commands are given as {@link guardedCommand} made them.
 */
export function ssh2Bulk(client: Client): BulkTransport {
  return {
    kind: 'ssh2',
    async start(line) {
      const channel = await new Promise<ClientChannel>((resolve, reject) => {
        client.exec(line, (err, ch) => {
          if (err) return reject(backupFailure(ErrorType.Transient, `SSH exec failed: ${err.message}`, err));
          trackExit(ch);
          resolve(ch);
        });
      });
      return {
        stdout: channel,
        stdin: channel,
        stderr: channel.stderr,
        exited: (what, stderr) => exitOf(channel, what, stderr),
        kill: () => { channel.destroy(); },
      };
    },
    close: async () => {},
  };
}

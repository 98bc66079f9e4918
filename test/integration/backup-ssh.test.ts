/**
 * Proves: the backup pipeline's SSH commands report the exit status of even the quickest command, run
 * many at once on one connection. (A quick command's exit can arrive in the same read as the exec
 * confirmation; a listener attached after awaiting the channel used to miss it, and the command then
 * looked like a dropped connection: "closed without an exit status".) And the OpenSSH client that
 * carries bulk streams accepts only the pinned host key, given as a line or a fingerprint, and holds
 * the private key in an agent whose directory has no key file and goes when the operation ends.
 */
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { Client } from 'ssh2';
import { connectSsh } from '../../activities/backups/index.ts';
import { openOpenSsh, pinnedHostKeyLine } from '../../activities/backups/openssh.ts';
import { collectStderr, guardedCommand, runRemote } from '../../activities/backups/ssh.ts';
import { sshFingerprint } from '../../activities/cloud/keys.ts';
import { ErrorType } from '../../lib/errors.ts';
import { startSshd, type TestSshd } from '../support/sshd.ts';

let sshd: TestSshd;
let client: Client;
beforeAll(async () => {
  sshd = await startSshd();
  client = await connectSsh(sshd.target);
});
afterAll(async () => {
  client?.end();
  await sshd?.stop();
});

test('a command whose exit arrives together with the exec confirmation still reports its exit status', async () => {
  // Make the late read certain: right after each exec request goes out, this process stays busy until
  // the server has confirmed the exec and the command has exited, so ssh2 reads both in one go (as a
  // worker busy hashing or running workflow tasks does). Reaches into ssh2's protocol object to do so.
  const protocol = (client as unknown as { _protocol: { exec: (...args: unknown[]) => unknown } })._protocol;
  const send = protocol.exec.bind(protocol);
  protocol.exec = (...args: unknown[]) => {
    const sent = send(...args);
    const until = Date.now() + 1500;
    while (Date.now() < until) { /* busy while the command runs and exits on the server */ }
    return sent;
  };
  try {
    const results = await Promise.all([runRemote(client, 'exit 3'), runRemote(client, 'true'), runRemote(client, 'echo hello')]);
    expect(results.map((r) => r.code)).toEqual([3, 0, 0]);
    expect(results[2]!.stdout.toString()).toBe('hello\n');
  } finally {
    protocol.exec = send;
  }
});

test('a command that really dies by a signal is still reported as such, not as an exit status', async () => {
  await expect(runRemote(client, 'kill -KILL $$')).rejects.toThrow(/closed without an exit status \(signal SIGKILL\)/);
});

test('bulk streams through OpenSSH: the pin (a key line or its fingerprint) is the only key accepted, and the private key never lies on disk', async () => {
  const line = await pinnedHostKeyLine(sshd.target);
  expect(line).toBe(sshd.target.hostKey.split(/\s+/).slice(0, 2).join(' '));
  // Servers Berth provisioned are pinned by fingerprint: the scanned key is kept only if it has that one.
  expect(await pinnedHostKeyLine({ ...sshd.target, hostKey: sshFingerprint(sshd.target.hostKey) })).toBe(line);
  const otherKey = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4';
  await expect(pinnedHostKeyLine({ ...sshd.target, hostKey: sshFingerprint(otherKey) })).rejects.toMatchObject({ type: ErrorType.HostKeyMismatch });

  const base = process.env.XDG_RUNTIME_DIR && existsSync(process.env.XDG_RUNTIME_DIR) ? process.env.XDG_RUNTIME_DIR : tmpdir();
  const bulk = await openOpenSsh(sshd.target, line!);
  // This operation's directory: the one whose known_hosts names this sshd.
  let mine = '';
  for (const d of (await readdir(base)).filter((n) => n.startsWith('berth-ssh-'))) {
    const known = await readFile(path.join(base, d, 'known_hosts'), 'utf8').catch(() => '');
    if (known.startsWith(`[${sshd.target.host}]:${sshd.target.port} `)) mine = path.join(base, d);
  }
  expect(mine).not.toBe('');
  const started = await bulk.start(guardedCommand('head -c 5000000 /dev/zero; exit 4'));
  let bytes = 0;
  started.stdout.on('data', (d: Buffer) => { bytes += d.length; });
  expect(await started.exited('head', () => '')).toBe(4);
  expect(bytes).toBe(5_000_000);
  // What the operation's directory holds: the pinned known_hosts line and the agent's socket, no key.
  expect((await readdir(mine)).sort()).toEqual(['agent', 'known_hosts']);
  expect(await readFile(path.join(mine, 'known_hosts'), 'utf8')).toBe(`[${sshd.target.host}]:${sshd.target.port} ${line}\n`);
  await bulk.close();
  expect(existsSync(mine)).toBe(false);

  // OpenSSH given another key than the server's refuses the server: HostKeyMismatch, not a retry.
  const wrong = await openOpenSsh(sshd.target, otherKey);
  const refused = await wrong.start(guardedCommand('true'));
  const text = collectStderr(refused.stderr);
  await expect(refused.exited('true', text)).rejects.toMatchObject({ type: ErrorType.HostKeyMismatch });
  await wrong.close();
});

/**
 * Proves: the backup pipeline's SSH commands report the exit status of even the quickest command, run
 * many at once on one connection. (A quick command's exit can arrive in the same read as the exec
 * confirmation; a listener attached after awaiting the channel used to miss it, and the command then
 * looked like a dropped connection: "closed without an exit status".)
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { Client } from 'ssh2';
import { connectSsh } from '../../activities/backups/index.ts';
import { runRemote } from '../../activities/backups/ssh.ts';
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

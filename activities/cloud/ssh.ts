/**
 * SSH to customer servers with the host key pinned (invariant 7, docs/invariants.md: ssh2 accepts any key unless
 * told not to). Only ed25519 host keys are negotiated, so a server cannot dodge the pin by offering
 * another key type; any other key fails with HostKeyMismatch before authentication.
 */
import type { Duplex } from 'node:stream';
import { ApplicationFailure } from '@temporalio/common';
import { Client } from 'ssh2';
import { ErrorType } from '../../lib/errors.ts';
import { sshFingerprint } from './keys.ts';

export interface PinnedTarget {
  host: string;
  port: number;
  username: string;
  /** OpenSSH private key of the customer (a secret: never logged). */
  privateKey: string;
  /** The pinned SHA256 fingerprint ("SHA256:..."). */
  hostKeyFingerprint: string;
  readyTimeoutMs?: number;
}

/** Connects; a different host key is a non-retryable HostKeyMismatch, anything else Transient. */
export function connectPinned(target: PinnedTarget): Promise<Client> {
  return new Promise((resolve, reject) => {
    const client = new Client();
    let presented: string | undefined;
    client.once('ready', () => resolve(client));
    client.once('error', (err: Error) => {
      client.end();
      if (presented !== undefined && presented !== target.hostKeyFingerprint) {
        reject(ApplicationFailure.nonRetryable(
          `${target.host}:${target.port} presented host key ${presented}, not the pinned ${target.hostKeyFingerprint}`,
          ErrorType.HostKeyMismatch,
        ));
      } else {
        reject(ApplicationFailure.retryable(`SSH to ${target.host}:${target.port} failed: ${err.message}`, ErrorType.Transient));
      }
    });
    client.connect({
      host: target.host,
      port: target.port,
      username: target.username,
      privateKey: target.privateKey,
      readyTimeout: target.readyTimeoutMs ?? 15_000,
      keepaliveInterval: 10_000,
      keepaliveCountMax: 3,
      algorithms: { serverHostKey: ['ssh-ed25519'] },
      hostVerifier: (key: Buffer) => {
        presented = sshFingerprint(key);
        return presented === target.hostKeyFingerprint;
      },
    });
  });
}

export interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Most output (stdout and stderr together) a command may write: the customer controls their server's shell. */
export const maxExecOutputBytes = 1024 * 1024;

/**
 * Runs a command; `stdin` (e.g. a config holding a token) goes over the channel, never on a command
 * line. Output past {@link maxExecOutputBytes} closes the channel and fails the call (Transient).
 */
export function sshExec(client: Client, command: string, stdin?: string): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    client.exec(command, (err, channel) => {
      if (err) return reject(ApplicationFailure.retryable(`SSH exec failed: ${err.message}`, ErrorType.Transient));
      const out: Buffer[] = [];
      const errOut: Buffer[] = [];
      let received = 0;
      let overflow = false;
      let code: number | null = null;
      const collect = (into: Buffer[]) => (d: Buffer) => {
        if (overflow) return;
        received += d.length;
        if (received <= maxExecOutputBytes) return void into.push(d);
        overflow = true;
        out.length = 0;
        errOut.length = 0;
        channel.close();
      };
      channel.on('data', collect(out));
      channel.stderr.on('data', collect(errOut));
      channel.on('exit', (c: number | null) => (code = c));
      channel.on('close', () => {
        if (overflow) return reject(ApplicationFailure.retryable(`the server wrote more than ${maxExecOutputBytes} bytes (do its shell startup files print?)`, ErrorType.Transient));
        resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(errOut).toString('utf8') });
      });
      channel.end(stdin);
    });
  });
}

/** Opens a direct-tcpip channel to `host:port` as seen from the server (an SSH tunnel). */
export function forwardOut(client: Client, host: string, port: number): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    client.forwardOut('127.0.0.1', 0, host, port, (err, channel) => {
      if (err) return reject(ApplicationFailure.retryable(`SSH tunnel to ${host}:${port} failed: ${err.message}`, ErrorType.Transient));
      resolve(channel);
    });
  });
}

/** Single-quotes a word for the remote POSIX shell. */
export function shq(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

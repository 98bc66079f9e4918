import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import net from 'node:net';
import { errorMessage } from '../../lib/errors.ts';

/** Where a managed process's output lines go: one combined log, each line prefixed by the name. */
export type LineSink = (name: string, line: string, stream: 'stdout' | 'stderr') => void;

export interface ManagedProcessOptions {
  name: string;
  command: string;
  args?: string[];
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Run as another user (e.g. PostgreSQL refuses to run as root). */
  uid?: number;
  gid?: number;
  /** Resolves true once the process serves; polled until `readyTimeoutMs`. */
  ready?: () => Promise<boolean>;
  readyTimeoutMs?: number;
  /** Signal that asks the process to stop cleanly (PostgreSQL: SIGINT is its "fast" shutdown). */
  stopSignal?: NodeJS.Signals;
  stopTimeoutMs?: number;
  sink?: LineSink;
}

export interface ManagedProcess {
  readonly name: string;
  readonly pid: number;
  readonly exited: Promise<number | null>;
  stop(): Promise<void>;
}

const colours = [36, 35, 33, 32, 34, 91, 96, 95];
let colourIndex = 0;

/** The default sink: `name | line` on our stdout, coloured per process when stdout is a terminal. */
export function prefixedSink(): LineSink {
  const widths = new Map<string, number>();
  return (name, line) => {
    if (!widths.has(name)) widths.set(name, colours[colourIndex++ % colours.length]!);
    const tag = name.padEnd(9);
    const coloured = process.stdout.isTTY ? `\x1b[${widths.get(name)}m${tag}\x1b[0m` : tag;
    process.stdout.write(`${coloured}| ${line}\n`);
  };
}

/**
 * Starts a child in its own process group, streams its output line by line to the sink, waits until
 * it is ready, and stops it (and everything it started) on request: the stop signal to the whole
 * group, then SIGKILL to the group if it has not exited in time.
 */
export async function startProcess(opts: ManagedProcessOptions): Promise<ManagedProcess> {
  const sink = opts.sink ?? prefixedSink();
  const child: ChildProcess = spawn(opts.command, opts.args ?? [], {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    uid: opts.uid,
    gid: opts.gid,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const spawned = new Promise<void>((resolve, reject) => {
    child.once('spawn', () => resolve());
    child.once('error', (err) => reject(new Error(`${opts.name}: could not start ${opts.command}: ${err.message}`)));
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : null))));
  for (const [stream, name] of [[child.stdout, 'stdout'], [child.stderr, 'stderr']] as const) {
    if (stream) createInterface({ input: stream }).on('line', (line) => sink(opts.name, line, name));
  }
  await spawned;
  const pid = child.pid!;
  let stopping: Promise<void> | undefined;
  const handle: ManagedProcess = {
    name: opts.name,
    pid,
    exited,
    stop() {
      stopping ??= (async () => {
        if (child.exitCode !== null || child.signalCode !== null) {
          killGroup(pid, 'SIGKILL');
          return;
        }
        killGroup(pid, opts.stopSignal ?? 'SIGTERM');
        const done = await Promise.race([exited.then(() => true), sleep(opts.stopTimeoutMs ?? 10_000, undefined, { ref: false }).then(() => false)]);
        // Whatever the leader left behind in its group goes too.
        killGroup(pid, 'SIGKILL');
        if (!done) await exited;
      })();
      return stopping;
    },
  };
  if (opts.ready) {
    const deadline = Date.now() + (opts.readyTimeoutMs ?? 60_000);
    let lastError = '';
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`${opts.name} exited (${child.exitCode ?? child.signalCode}) before it was ready`);
      }
      try {
        if (await opts.ready()) break;
      } catch (err) {
        lastError = errorMessage(err);
      }
      if (Date.now() > deadline) {
        await handle.stop();
        throw new Error(`${opts.name} was not ready within ${opts.readyTimeoutMs ?? 60_000} ms${lastError ? `: ${lastError}` : ''}`);
      }
      await sleep(200);
    }
  }
  return handle;
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // The group is already gone.
  }
}

/** True once something accepts TCP connections on host:port. */
export function portOpen(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });
}

/** True once GET url answers with a status below 500. */
export async function httpOk(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    await res.body?.cancel();
    return res.status < 500;
  } catch {
    return false;
  }
}

/** A TCP port that was free a moment ago, for services started by tests. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

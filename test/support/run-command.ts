import { spawn, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import path from 'node:path';
import { httpOk } from '../../lib/process.ts';
import { rootDir } from '../../lib/paths.ts';

export interface RunningBerth {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

/** Starts the README's run command (scripts/dev) with its state in `dataDir`, and waits for the app and the Temporal UI. */
export async function startRunCommand(dataDir: string, timeoutMs = 240_000): Promise<RunningBerth> {
  const child = spawn(path.join(rootDir, 'scripts', 'dev'), [], {
    cwd: rootDir,
    env: { ...process.env, BERTH_DATA_DIR: dataDir, FORCE_COLOR: '0', DATABASE_URL: '', TEMPORAL_ADDRESS: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout!.on('data', (chunk: Buffer) => { log += chunk.toString(); });
  child.stderr!.on('data', (chunk: Buffer) => { log += chunk.toString(); });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const deadline = Date.now() + timeoutMs;
  while (!((await httpOk('http://localhost:3000/healthz')) && (await httpOk('http://localhost:8233')) && log.includes('Berth is running'))) {
    if (child.exitCode !== null) throw new Error(`the run command exited (${child.exitCode}) before it was ready:\n${log}`);
    if (Date.now() > deadline) {
      child.kill('SIGTERM');
      throw new Error(`the run command was not ready in ${timeoutMs} ms:\n${log}`);
    }
    await sleep(500);
  }
  return { child, output: () => log, exited };
}

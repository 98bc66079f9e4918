import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, expect, test } from 'vitest';
import { alive, descendants } from '../support/processes.ts';
import { startRunCommand } from '../support/run-command.ts';

let dataDir = '';
afterAll(async () => {
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

test('the run command serves the app on 3000 and the Temporal UI on 8233, and SIGTERM leaves no process behind', async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'berth-run-'));
  const berth = await startRunCommand(dataDir);
  const pid = berth.child.pid!;

  const home = await fetch('http://localhost:3000/');
  expect(home.status).toBe(200);
  expect(await home.text()).toContain('Berth');
  const ui = await fetch('http://localhost:8233/');
  expect(ui.status).toBe(200);

  // A part that dies is said loudly and restarted, as production's restart policy would: the rest keeps running.
  const worker = await processRunning(pid, 'worker/main.ts');
  process.kill(worker, 'SIGKILL');
  await until(() => /worker exited on its own \(code \d+\).*restarting in 1 s/.test(berth.output()), 'the worker death to be reported', berth.output);
  await until(() => berth.output().includes('worker is back (restart 1)'), 'the worker to be back', berth.output);
  expect(await processRunning(pid, 'worker/main.ts')).not.toBe(worker);
  expect((await fetch('http://localhost:3000/healthz')).status).toBe(200);
  expect(berth.child.exitCode).toBeNull();

  const children = await descendants(pid);
  // PostgreSQL, Temporal, MinIO, maildev, the worker and the web server, at least.
  expect(children.length).toBeGreaterThanOrEqual(6);

  berth.child.kill('SIGTERM');
  const code = await Promise.race([berth.exited, sleep(60_000).then(() => 'timeout' as const)]);
  expect(code, berth.output()).toBe(0);
  const left: number[] = [];
  for (const child of children) if (await alive(child)) left.push(child);
  expect(left, `processes left behind: ${left.join(', ')}`).toEqual([]);
  expect(await fetch('http://localhost:3000/').then(() => 'answered', () => 'refused')).toBe('refused');
});

/** The pid of the run command's descendant whose command line contains `script`. */
async function processRunning(root: number, script: string): Promise<number> {
  for (const pid of await descendants(root)) {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.split('\0').includes(script)) return pid;
  }
  throw new Error(`no process runs ${script}`);
}

async function until(check: () => boolean | Promise<boolean>, what: string, output: () => string, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`waited ${timeoutMs} ms for ${what}:\n${output().slice(-4000)}`);
    await sleep(250);
  }
}

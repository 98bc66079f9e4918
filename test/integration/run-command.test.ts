import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
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

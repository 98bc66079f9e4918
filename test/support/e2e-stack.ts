/**
 * Global setup of the e2e tier: the whole of Berth started by the README's run command, with its
 * state in a temporary folder, stopped by SIGTERM when the tier ends.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { startRunCommand } from './run-command.ts';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'berth-e2e-'));
  const berth = await startRunCommand(dataDir);
  project.provide('appUrl', 'http://localhost:3000');
  project.provide('temporalUiUrl', 'http://localhost:8233');
  return async () => {
    berth.child.kill('SIGTERM');
    await berth.exited;
    // The run command's combined log, kept for reading after a failed story.
    await mkdir('test-results', { recursive: true });
    await writeFile(path.join('test-results', 'e2e-run-command.log'), berth.output());
    await rm(dataDir, { recursive: true, force: true });
  };
}

declare module 'vitest' {
  export interface ProvidedContext {
    appUrl: string;
    temporalUiUrl: string;
  }
}

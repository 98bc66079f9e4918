/**
 * Global setup of the security tier: a whole local Berth on free ports (test/support/berth-stack.ts),
 * with its state in a temporary folder and its combined log kept in test-results/, stopped when the
 * tier ends. The probes reach it only through what it serves, as an attacker would, plus its
 * database and process ids to check what happened.
 */
import { appendFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { startBerthStack } from './berth-stack.ts';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'berth-security-'));
  // Written as it comes, so a run that hangs can still be read.
  const logFile = path.join('test-results', 'security-berth.log');
  await mkdir('test-results', { recursive: true });
  await writeFile(logFile, '');
  const sink = (name: string, line: string) => appendFileSync(logFile, `${name.padEnd(9)}| ${line}\n`);
  let stack;
  try {
    stack = await startBerthStack({ dataDir, sink });
  } catch (err) {
    await rm(dataDir, { recursive: true, force: true });
    throw err;
  }
  project.provide('berth', {
    appUrl: stack.appUrl, mailUrl: stack.mailUrl, databaseUrl: stack.databaseUrl, temporalAddress: stack.temporalAddress,
    webPid: stack.webPid, workerPid: stack.workerPid, appEnv: stack.appEnv, dataDir,
  });
  return async () => {
    await stack.stop();
    await rm(dataDir, { recursive: true, force: true });
  };
}

declare module 'vitest' {
  export interface ProvidedContext {
    berth: {
      appUrl: string;
      mailUrl: string;
      databaseUrl: string;
      temporalAddress: string;
      webPid: number;
      workerPid: number;
      appEnv: Record<string, string>;
      dataDir: string;
    };
  }
}

import { ESLint } from 'eslint';
import { expect, test } from 'vitest';
import { rootDir } from '../../scripts/services/paths.ts';

const eslint = new ESLint({ cwd: rootDir });

async function problems(code: string, file = 'workflows/probe.ts'): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: `${rootDir}/${file}` });
  return (result?.messages ?? []).map((m) => `${m.ruleId}: ${m.message}`);
}

test('workflow code may not import Node built-ins, with or without the node: prefix', async () => {
  expect(await problems(`import fs from 'node:fs';\nexport const f = fs;\n`)).toEqual([
    expect.stringContaining('Node built-ins'),
  ]);
  expect(await problems(`import { createHash } from 'crypto';\nexport const f = createHash;\n`)).toEqual([
    expect.stringContaining('Node built-ins'),
  ]);
});

test('workflow code may import only types from activities/, and nothing from db, api, web or worker', async () => {
  expect(await problems(`import type { X } from '../activities/contracts.ts';\nexport type Y = X;\n`)).toEqual([]);
  expect(await problems(`import { x } from '../activities/contracts.ts';\nexport const y = x;\n`)).toEqual([
    expect.stringContaining('import type'),
  ]);
  for (const layer of ['db/client.ts', 'api/app.ts', 'web/root.tsx', 'worker/main.ts']) {
    expect(await problems(`import { x } from '../${layer}';\nexport const y = x;\n`)).toEqual([
      expect.stringContaining('I/O layers'),
    ]);
  }
});

test('the same imports are fine outside workflows/', async () => {
  expect(await problems(`import fs from 'node:fs';\nexport const f = fs;\n`, 'activities/probe.ts')).toEqual([]);
});

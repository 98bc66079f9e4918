import { ESLint } from 'eslint';
import tseslint from 'typescript-eslint';
import { expect, test } from 'vitest';
import { rootDir } from '../../lib/paths.ts';

// The probes are text that names files which do not exist, so the type-aware rules (which need the file in the
// TypeScript project) are left out; every other rule is the project's own.
const eslint = new ESLint({ cwd: rootDir, overrideConfig: tseslint.configs.disableTypeChecked });

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

test('product code never imports scripts/ (entry points), and logs instead of printing', async () => {
  for (const file of ['api/probe.ts', 'activities/probe.ts', 'lib/probe.ts', 'web/probe.tsx', 'worker/probe.ts', 'sim/probe.ts', 'db/probe.ts']) {
    expect(await problems(`import { x } from '../scripts/services/postgres.ts';\nexport const y = x;\n`, file)).toEqual([
      expect.stringContaining('must not import scripts/'),
    ]);
    expect(await problems(`console.log('hello');\nexport {};\n`, file)).toEqual([expect.stringContaining('no-console')]);
  }
  expect(await problems(`import { x } from '../scripts/services/postgres.ts';\nexport const y = x;\n`)).toEqual([
    expect.stringContaining('or scripts'),
  ]);
  for (const file of ['scripts/probe.ts', 'test/probe.ts', 'bench/probe.ts']) {
    expect(await problems(`import { x } from '../scripts/services/postgres.ts';\nconsole.log(x);\n`, file)).toEqual([]);
  }
});

/**
 * Runs Berth's checks and test tiers in order and ends with one line of totals over all of them:
 * `N passed, N failed`. Each tier's vitest project starts and stops the services it needs.
 * Usage: node scripts/test.ts [tier ...]   (tiers: static unit workflows replay integration security production e2e)
 */
import { spawn } from 'node:child_process';
import { mkdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { cacheDir, rootDir } from '../lib/paths.ts';

const allTiers = ['static', 'unit', 'workflows', 'replay', 'integration', 'security', 'production', 'e2e'] as const;
type Tier = (typeof allTiers)[number];

const requested = process.argv.slice(2);
for (const name of requested) {
  if (!(allTiers as readonly string[]).includes(name)) {
    console.error(`unknown tier "${name}"; tiers are: ${allTiers.join(', ')}`);
    process.exit(2);
  }
}
const tiers: Tier[] = requested.length > 0 ? (requested as Tier[]) : [...allTiers];

const resultsDir = path.join(cacheDir, 'test-results');
await rm(resultsDir, { recursive: true, force: true });
await mkdir(resultsDir, { recursive: true });

const env: NodeJS.ProcessEnv = {
  ...process.env,
  TEMPORAL_TEST_SERVER: process.env.TEMPORAL_TEST_SERVER ?? path.join(cacheDir, 'temporal-test-server', 'temporal-test-server'),
  CHROMIUM_PATH: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  FORCE_COLOR: process.env.FORCE_COLOR ?? (process.stdout.isTTY ? '1' : '0'),
};

function run(command: string, args: string[]): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: rootDir, env, stdio: 'inherit' });
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

interface Count { passed: number; failed: number; skipped: number; seconds: number; note?: string }
const counts = new Map<Tier, Count>();

async function vitestTier(tier: Exclude<Tier, 'static'>): Promise<Count> {
  const out = path.join(resultsDir, `${tier}.json`);
  const started = Date.now();
  const code = await run('npx', ['vitest', 'run', '--project', tier, '--reporter=default', '--reporter=json', `--outputFile.json=${out}`]);
  const seconds = (Date.now() - started) / 1000;
  try {
    const report = JSON.parse(await readFile(out, 'utf8')) as {
      numPassedTests: number; numFailedTests: number; numPendingTests: number; numTodoTests: number;
      numFailedTestSuites: number; numTotalTests: number;
    };
    // A suite that fails to load (or a failing hook) has no failed test of its own: count it.
    const failed = report.numFailedTests + (report.numFailedTests === 0 && code !== 0 ? Math.max(1, report.numFailedTestSuites) : 0);
    return { passed: report.numPassedTests, failed, skipped: report.numPendingTests + report.numTodoTests, seconds,
      note: report.numTotalTests === 0 ? 'no tests ran' : undefined };
  } catch {
    return { passed: 0, failed: 1, skipped: 0, seconds, note: `vitest exited ${code} without a report` };
  }
}

async function staticTier(): Promise<Count> {
  const started = Date.now();
  let passed = 0;
  let failed = 0;
  console.log('\n== static: web route types, typecheck, lint ==');
  const typegen = await run('npx', ['react-router', 'typegen']);
  const tsc = typegen === 0 ? await run('npx', ['tsc', '-p', 'tsconfig.json']) : typegen;
  if (tsc === 0) passed++; else { failed++; console.log('typecheck failed'); }
  const lint = await run('npx', ['eslint', '--max-warnings=0', '.']);
  if (lint === 0) passed++; else { failed++; console.log('lint failed'); }
  return { passed, failed, skipped: 0, seconds: (Date.now() - started) / 1000 };
}

for (const tier of tiers) {
  if (tier === 'static') {
    counts.set(tier, await staticTier());
  } else {
    console.log(`\n== ${tier} ==`);
    counts.set(tier, await vitestTier(tier));
  }
}

let passed = 0;
let failed = 0;
let skipped = 0;
console.log('\nTier          passed  failed  skipped  seconds');
for (const [tier, c] of counts) {
  passed += c.passed;
  failed += c.failed;
  skipped += c.skipped;
  console.log(`${tier.padEnd(12)} ${String(c.passed).padStart(7)} ${String(c.failed).padStart(7)} ${String(c.skipped).padStart(8)} ${c.seconds.toFixed(1).padStart(8)}${c.note ? `  (${c.note})` : ''}`);
}
const emptyTier = [...counts.entries()].find(([t, c]) => t !== 'static' && c.passed + c.failed === 0);
if (emptyTier) {
  console.log(`tier ${emptyTier[0]} ran no test`);
  failed += 1;
}
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed > 0 ? 1 : 0);

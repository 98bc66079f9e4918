/**
 * The replay tier: today's workflow code must replay every recorded history of the main paths,
 * and the harness must catch a non-deterministic change (a changed copy of the workflow fails).
 */
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bundle, loadHistories, replayAll, repoRoot } from './harness.ts';

const changedRoot = path.join(repoRoot, 'test/replay', `.changed-${process.pid}`);
afterAll(() => rmSync(changedRoot, { recursive: true, force: true }));

describe('replay of recorded histories', () => {
  it('has histories of the main paths', () => {
    const names = loadHistories().map((h) => h.name);
    for (const path of ['new-customer', 'auto-renew', 'cancel-expire-renew', 'retention-purged', 'payment-failed-recovered-then-grace-over',
      'idle-stop-wake-and-updates', 'final-backup-failing-override', 'continue-as-new', 'plan-downgrade-rebuild', 'hibernate-wake-fallback',
      // Recorded after billing facts were ordered one by one and messages after the purge started a next life.
      'renewal-failure-out-of-order', 'delayed-payment', 'purged-then-next-life']) {
      expect(names).toContain(`${path}.json`);
    }
    expect(names).toContain('continue-as-new.run2.json');
    expect(names).toContain('purged-then-next-life.run2.json');
  });

  it('replays every recorded history with the current workflow code', async () => {
    const results = await replayAll(await bundle(path.join(repoRoot, 'workflows/index.ts')));
    expect(results.length).toBe(loadHistories().length);
    expect(results.filter((r) => r.error).map((r) => `${r.name}: ${r.error?.message}`)).toEqual([]);
  });

  it('catches a non-deterministic change: a copy that adds a timer before the welcome mail fails replay', async () => {
    // Copy the workflow with its relative imports, then change the commands it issues.
    mkdirSync(changedRoot, { recursive: true });
    for (const dir of ['workflows', 'activities', 'lib']) cpSync(path.join(repoRoot, dir), path.join(changedRoot, dir), { recursive: true });
    const file = path.join(changedRoot, 'workflows/customer-lifecycle.ts');
    const source = readFileSync(file, 'utf8');
    const target = "    await sendMailOnce(lc, 'welcome', 'signup', {});";
    const imports = 'import { allHandlersFinished,';
    expect(source).toContain(target);
    expect(source).toContain(imports);
    writeFileSync(file, source.replace(target, `    await sleep('1 minute');\n${target}`).replace(imports, 'import { sleep, allHandlersFinished,'));

    const results = await replayAll(await bundle(path.join(changedRoot, 'workflows/index.ts')));
    const failed = results.filter((r) => r.error);
    expect(failed.map((r) => r.name)).toContain('new-customer.json');
    expect(failed.find((r) => r.name === 'new-customer.json')!.error!.name).toBe('DeterminismViolationError');
    // A continued run does not send the welcome mail again, so it still replays: the change is caught where it matters.
    expect(failed.map((r) => r.name)).not.toContain('continue-as-new.run2.json');
  });
});

import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { expect, test } from 'vitest';
import { planIds, stages } from '../../lib/product.ts';
import { lifecycleSearchAttributeKeys } from '../../workflows/search-attributes.ts';
import { defaultLifecycleConfig } from '../../workflows/deadlines.ts';
import { berthSearchAttributes } from '../../scripts/services/temporal.ts';
import { createPlans } from '../../activities/billing/plans.ts';
import { rootDir } from '../../scripts/services/paths.ts';
import { customerWorkflowStart } from '../../lib/lifecycle-client.ts';

// Names that live in more than one place on purpose (the database checks them, migrations are frozen
// history, the Temporal server must know the search attributes): they must not drift apart.

test('the frozen initial migration lists exactly the stages and plans of lib/product.ts', async () => {
  const migration = await readFile(path.join(rootDir, 'db/migrations/2026-11-26T00-00-00-initial.ts'), 'utf8');
  const list = (name: string): unknown => JSON.parse(migration.match(new RegExp(`const ${name} = (\\[[^\\]]*\\]);`))![1]!.replaceAll("'", '"'));
  expect(list('customerStages')).toEqual([...stages]);
  expect(list('plans')).toEqual([...planIds]);
});

test('production starts each customer on the plan table the workflow defaults, tests and recorded histories use', () => {
  const plans = createPlans();
  expect(Object.keys(plans)).toEqual([...planIds]);
  const [input] = customerWorkflowStart({ taskQueue: 'q', plans }).workflowArgs('u1');
  expect(input.config?.plans).toEqual(defaultLifecycleConfig.plans);
});

test('the dev server and production register exactly the search attributes the workflow upserts', async () => {
  const wanted = Object.fromEntries(lifecycleSearchAttributeKeys.map((k) => [k.name, k.type === 'BOOL' ? 'Bool' : 'Keyword']));
  expect(berthSearchAttributes).toEqual(wanted);
  const compose = await readFile(path.join(rootDir, 'scripts/compose/temporal-namespace.sh'), 'utf8');
  for (const [name, type] of Object.entries(wanted)) expect(compose).toContain(`${name}=${type}`);
});

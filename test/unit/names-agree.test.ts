import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { expect, test } from 'vitest';
import { customerStages, plans } from '../../db/tables/customers.ts';
import { stages } from '../../workflows/messages.ts';
import { lifecycleSearchAttributeKeys } from '../../workflows/search-attributes.ts';
import { berthSearchAttributes } from '../../scripts/services/temporal.ts';
import { createPlans } from '../../activities/billing/plans.ts';
import { rootDir } from '../../scripts/services/paths.ts';

// Names that live in more than one place on purpose (the database checks them, migrations are frozen
// history, the Temporal server must know the search attributes): they must not drift apart.

test('the database accepts exactly the stages and plans the workflow and billing use', () => {
  expect([...customerStages]).toEqual([...stages]);
  expect([...plans].sort()).toEqual(Object.keys(createPlans()).sort());
});

test('the dev server and production register exactly the search attributes the workflow upserts', async () => {
  const wanted = Object.fromEntries(lifecycleSearchAttributeKeys.map((k) => [k.name, k.type === 'BOOL' ? 'Bool' : 'Keyword']));
  expect(berthSearchAttributes).toEqual(wanted);
  const compose = await readFile(path.join(rootDir, 'scripts/compose/temporal-namespace.sh'), 'utf8');
  for (const [name, type] of Object.entries(wanted)) expect(compose).toContain(`${name}=${type}`);
});

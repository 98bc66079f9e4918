import { defineSearchAttributeKey } from '@temporalio/common';
import { upsertSearchAttributes, sleep, setCurrentDetails, workflowInfo } from '@temporalio/workflow';
import { helper } from './helper.ts';
const Stage = defineSearchAttributeKey('Stage', 'KEYWORD');
const NA = defineSearchAttributeKey('NeedsAttention', 'BOOL');
export async function probe(): Promise<string> {
  setCurrentDetails('waiting **x**');
  upsertSearchAttributes([{ key: Stage, value: 'active' }, { key: NA, value: true }]);
  await sleep('1 day', { summary: 'wait a day' });
  return helper() + JSON.stringify(workflowInfo().typedSearchAttributes);
}

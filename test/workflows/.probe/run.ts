import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import path from 'node:path';
const env = await TestWorkflowEnvironment.createTimeSkipping({ server: { executable: { type: 'existing-path', path: path.resolve('.cache/temporal-test-server/temporal-test-server') } } });
try {
  if (process.argv[2] === 'register') {
    await env.connection.operatorService.addSearchAttributes({ namespace: 'default', searchAttributes: { Stage: 2, NeedsAttention: 6 } as any });
    console.log('registered');
  }
  const worker = await Worker.create({ connection: env.nativeConnection, taskQueue: 'q', workflowsPath: path.resolve('test/workflows/.probe/wf.ts') });
  const r = await worker.runUntil(env.client.workflow.execute('probe', { taskQueue: 'q', workflowId: 'p1' }));
  console.log('result', r);
} catch (e) { console.log('ERR', e); } finally { await env.teardown(); }

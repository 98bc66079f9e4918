/**
 * Builds the worker's workflow bundle ahead of time: `node worker/bundle.ts [out]` (default
 * build/workflows.js). Production workers load it with WORKFLOW_BUNDLE instead of bundling the
 * workflow code with webpack at every start, so a start takes seconds and every worker runs
 * byte-for-byte the same workflow code (the image builds it once; see Dockerfile).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { rootDir } from '../scripts/services/paths.ts';

/** Where the workflows the worker registers live: every export of this module is a workflow type. */
export const workflowsPath = path.join(rootDir, 'workflows', 'index.ts');

/** Bundles the workflows into `out` (a CommonJS file with an inline source map); returns its size in bytes. */
export async function writeWorkflowBundle(out: string): Promise<number> {
  const { code } = await bundleWorkflowCode({ workflowsPath });
  await mkdir(path.dirname(out), { recursive: true });
  await writeFile(out, code);
  return Buffer.byteLength(code);
}

if (import.meta.main) {
  const out = path.resolve(process.argv[2] ?? path.join(rootDir, 'build', 'workflows.js'));
  const bytes = await writeWorkflowBundle(out);
  process.stdout.write(`workflow bundle: ${out} (${(bytes / 1024).toFixed(0)} KiB)\n`);
}

/**
 * Replay harness: replays every recorded history in test/histories/ (scripts/record-histories.ts
 * writes them from real runs on the dev server) against a workflow bundle, and reports each result.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import proto from '@temporalio/proto';
import { DefaultLogger, Runtime, Worker, bundleWorkflowCode, type ReplayResult, type WorkflowBundleWithSourceMap } from '@temporalio/worker';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const historiesDir = path.join(repoRoot, 'test/histories');

/** The recorded histories, by file name. */
export function loadHistories(dir = historiesDir): { name: string; workflowId: string; history: proto.temporal.api.history.v1.History }[] {
  return readdirSync(dir).filter((f) => f.endsWith('.json')).sort().map((name) => {
    // Written by scripts/record-histories.ts with the proto's own toJSON; read back the same way.
    const history = proto.temporal.api.history.v1.History.fromObject(JSON.parse(readFileSync(path.join(dir, name), 'utf8')));
    return { name, workflowId: name.replace(/\.json$/, ''), history };
  });
}

let runtimeInstalled = false;

/** Bundles the workflows at `workflowsPath` (the real ones, or a changed copy). */
export async function bundle(workflowsPath: string): Promise<WorkflowBundleWithSourceMap> {
  if (!runtimeInstalled) {
    runtimeInstalled = true;
    Runtime.install({ logger: new DefaultLogger('WARN') });
  }
  return bundleWorkflowCode({ workflowsPath, logger: new DefaultLogger('WARN') });
}

/** Replays each history; a result with `error` is a history the bundle cannot replay. */
export async function replayAll(workflowBundle: WorkflowBundleWithSourceMap, dir = historiesDir): Promise<(ReplayResult & { name: string })[]> {
  const histories = loadHistories(dir);
  const byId = new Map(histories.map((h) => [h.workflowId, h.name]));
  const results: (ReplayResult & { name: string })[] = [];
  for await (const result of Worker.runReplayHistories({ workflowBundle, replayName: 'berth-replay' }, histories.map(({ workflowId, history }) => ({ workflowId, history })))) {
    results.push({ ...result, name: byId.get(result.workflowId) ?? result.workflowId });
  }
  return results;
}

/**
 * Replays every recorded history (test/histories/) with the workflow code at `workflowsPath` and
 * writes every command it issues, arguments included, as JSON: activity inputs, options and
 * summaries, timers, search attributes, patch markers, update responses, continue-as-new and
 * completion payloads. Replay itself compares only the kinds and order of commands; comparing two
 * outputs (`cmp`) proves that a change of the workflow code changed nothing it sends.
 *
 *   node test/replay/commands.ts workflows/index.ts /tmp/after.json
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { DefaultLogger, Runtime, Worker, bundleWorkflowCode } from '@temporalio/worker';
import { loadHistories } from './harness.ts';

/** Payload bytes (a Uint8Array, or its structured-clone form {0: …, 1: …}) as JSON or text. */
function decode(value: unknown): unknown {
  const bytesLike = value !== null && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length > 0
    && Object.keys(value).every((k, i) => k === String(i)) && Object.values(value).every((v) => typeof v === 'number');
  if (value instanceof Uint8Array || bytesLike) {
    const text = Buffer.from(value instanceof Uint8Array ? value : Object.values(value as Record<string, number>)).toString('utf8');
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }
  if (Array.isArray(value)) return value.map(decode);
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, decode(v)]));
  return value;
}

const [workflowsPath, out] = process.argv.slice(2);
if (!workflowsPath || !out) {
  console.error('usage: node test/replay/commands.ts <workflows/index.ts> <out.json>');
  process.exit(2);
}
Runtime.install({ logger: new DefaultLogger('WARN') });
const workflowBundle = await bundleWorkflowCode({
  workflowsPath: path.resolve(workflowsPath),
  workflowInterceptorModules: [path.join(import.meta.dirname, 'commands-interceptor.ts')],
  logger: new DefaultLogger('WARN'),
});
const histories = loadHistories();
const names = new Map(histories.map((h) => [h.workflowId, h.name]));
const issued: Record<string, unknown[]> = {};
const results: { name: string; error: string | null }[] = [];
for await (const result of Worker.runReplayHistories({
  workflowBundle,
  replayName: 'commands',
  sinks: { commands: { issued: { fn: (info, commands: unknown[]) => void (issued[names.get(info.workflowId)!] ??= []).push(decode(commands)), callDuringReplay: true } } },
}, histories.map(({ workflowId, history }) => ({ workflowId, history })))) {
  results.push({ name: names.get(result.workflowId)!, error: result.error?.message ?? null });
}
writeFileSync(out, JSON.stringify({ results, issued }, null, 1));
for (const r of results) console.log(`${r.name}: ${r.error ?? 'replayed'}, ${(issued[r.name] ?? []).length} activations with commands`);
process.exitCode = results.some((r) => r.error) ? 1 : 0;

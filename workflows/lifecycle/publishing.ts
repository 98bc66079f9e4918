/**
 * What the lifecycle shows: the state query's view, and on each pass the search attributes, the
 * current details (Temporal Web UI) and the projection row pages read, each written only when changed.
 */
import { log, setCurrentDetails, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { SearchAttributeUpdatePair } from '@temporalio/common';
import type { LifecycleProjection } from '../../activities/contracts.ts';
import type { LifecycleView } from '../messages.ts';
import { accessEndsAtMs, deriveStage, describeDeadline, dueDeadline, nextDeadline, toIso, willRenew, type Deadline } from '../deadlines.ts';
import { CustomerIdKey, NeedsAttentionKey, PlanKey, ServerIdKey, StageKey } from '../search-attributes.ts';
import { failureMessage, projection } from './activity-proxies.ts';
import type { Lifecycle } from './lifecycle.ts';
import { scheduleInput, serverRunning } from './state.ts';

/** The deadline due now or, if none, the next one. */
export function upcoming(lc: Lifecycle, now: number): Deadline | null {
  const input = scheduleInput(lc.state, now, lc.customerId, lc.config);
  return dueDeadline(input) ?? nextDeadline(input);
}

/** The answer of the state query. */
export function view(lc: Lifecycle): LifecycleView {
  const { state } = lc;
  const now = Date.now();
  const end = accessEndsAtMs(state.billing, lc.config);
  const next = upcoming(lc, now);
  const server = state.server;
  return {
    customerId: lc.customerId,
    stage: deriveStage(state.phase, state.billing, lc.config, now, serverRunning(state)),
    plan: state.billing.plan,
    accessEndsAt: end === null ? null : toIso(end),
    willRenew: willRenew(state.billing),
    needsAttention: state.needsAttention,
    attentionReason: state.attentionReason,
    nextDeadline: next === null ? null : { at: toIso(next.atMs), action: next.action.kind, description: describeDeadline(next.action) },
    server: server === null ? null
      : server.power === 'hibernated' ? { power: 'hibernated', snapshotId: server.snapshotId }
      : { ...server.summary, power: server.power },
    recentBackups: [...state.recentBackups],
    backupInProgress: lc.backupInProgress === null ? null : { ...lc.backupInProgress },
    dataKeptUntil: state.dataKeptUntil,
    timeline: [...state.timeline],
    settings: {
      model: state.settings.model ?? null,
      timeZone: state.settings.timeZone ?? null,
      apiKeySaved: state.settings.apiKeySecretId !== undefined,
      pending: state.settingsPending,
    },
  };
}

/** Search attributes, current details and the projection row, each written only when changed. */
export async function publish(lc: Lifecycle): Promise<void> {
  const { state, customerId } = lc;
  const v = view(lc);
  const serverId = state.server !== null && state.server.power !== 'hibernated' ? state.server.summary.serverId : null;
  const wanted: SearchAttributeUpdatePair[] = [
    { key: CustomerIdKey, value: customerId },
    { key: PlanKey, value: state.billing.plan },
    { key: StageKey, value: v.stage },
    { key: ServerIdKey, value: serverId },
    { key: NeedsAttentionKey, value: state.needsAttention },
  ];
  const current = workflowInfo().typedSearchAttributes;
  const changes = wanted.filter((pair) => (current.get(pair.key as never) ?? null) !== pair.value);
  if (changes.length > 0) upsertSearchAttributes(changes);

  setCurrentDetails([
    `**Stage:** ${v.stage}${v.plan ? ` · **Plan:** ${v.plan}` : ''}${v.accessEndsAt ? ` · **Access ends:** ${v.accessEndsAt}${v.willRenew ? ' (renews)' : ''}` : ''}`,
    v.nextDeadline ? `**Waiting until** ${v.nextDeadline.at} to ${v.nextDeadline.description}, or for a billing event, user activity or update.` : '**Waiting** for a billing event, user activity or update.',
    state.needsAttention ? `**Needs attention:** ${state.attentionReason}` : '',
  ].filter(Boolean).join('\n\n'));

  const row: Omit<LifecycleProjection, 'asOf'> = {
    customerId, workflowId: lc.workflowId, stage: v.stage, plan: v.plan, accessEndsAt: v.accessEndsAt, willRenew: v.willRenew,
    needsAttention: v.needsAttention, attentionReason: v.attentionReason,
    server: {
      serverId,
      serverType: state.server === null ? null : state.server.power === 'hibernated' ? state.server.serverType : state.server.summary.serverType,
      power: state.server?.power ?? 'none',
      ipv4: state.server !== null && state.server.power !== 'hibernated' ? state.server.summary.ipv4 : null,
    },
    nextDeadline: v.nextDeadline === null ? null : { at: v.nextDeadline.at, action: v.nextDeadline.action },
    dataKeptUntil: v.dataKeptUntil,
    lastBackup: state.recentBackups.length === 0 ? null : (({ backupId, createdAt }) => ({ backupId, createdAt }))(state.recentBackups[state.recentBackups.length - 1]!),
  };
  const json = JSON.stringify(row);
  if (json !== state.lastProjectionJson) {
    try {
      await projection.writeProjection.executeWithOptions({ summary: `projection: ${v.stage}` }, [{ ...row, asOf: toIso(Date.now()) }]);
      state.lastProjectionJson = json;
    } catch (err) {
      log.warn('projection write failed', { customerId, error: failureMessage(err) });
    }
  }
}

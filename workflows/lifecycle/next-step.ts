/**
 * What the lifecycle's main loop does next, and the phase changes there are. Pure: the loop passes
 * the state, the time it read once for the pass, and its context; unit tests call these directly.
 */
import type { PlanId } from '../../activities/contracts.ts';
import { dueDeadline, hasAccess, toMs, type Deadline, type LifecycleConfig, type Phase } from '../deadlines.ts';
import { lifecyclePatches, scheduleInput, type LifecycleState } from './state.ts';

/**
 * Every phase change of the lifecycle, by its reason: the phases it leaves from, the phase it
 * enters, and the timeline line that announces it (null: the step that causes it says more).
 */
export const transitions = {
  /** Money came for a customer waiting for it. */
  paid: { from: ['awaiting_payment'], to: 'provisioning', says: 'paid: provisioning' },
  /** Money came again after the server was deleted: a new server gets the latest backup. */
  renewed: { from: ['expired'], to: 'restoring', says: 'renewed after expiry: restoring' },
  /** The server is up with the assistant (and, when restoring, the latest usable backup). */
  serverReady: { from: ['provisioning', 'restoring'], to: 'serving', says: null },
  /** A plan the server's disk cannot take in place: deleted after a verified backup, rebuilt on the plan. */
  rebuildForPlan: { from: ['serving'], to: 'restoring', says: null },
  /** Access ended: the server was deleted after its verified final backup (or an operator's override). */
  accessEnded: { from: ['serving'], to: 'expired', says: null },
  /** The plan's backup retention is over. */
  retentionOver: { from: ['expired'], to: 'purged', says: 'retention over: customer purged' },
} as const satisfies Record<string, { from: readonly Phase[]; to: Phase; says: string | null }>;

export type PhaseChange = keyof typeof transitions;

/**
 * Checks a phase change against {@link transitions}: returns the line to note (or null), throws
 * when the table has no such move (a bug; the workflow task fails and is retried once fixed).
 */
export function checkTransition(from: Phase, to: Phase, why: PhaseChange): string | null {
  const move = transitions[why];
  if (move.to !== to || !(move.from as readonly Phase[]).includes(from)) {
    throw new Error(`no phase change ${from} → ${to} for "${why}" (transitions allow ${move.from.join(' | ')} → ${move.to})`);
  }
  return move.says;
}

/** One thing the main loop does in a pass. */
export type Step =
  /** An update's request waits: serve it first (the customer is waiting for the answer). */
  | { kind: 'serve' }
  /** Purged: the run ends. */
  | { kind: 'complete' }
  /** After an unexpected failure nothing runs before `cooldownUntil`: publish and wait. */
  | { kind: 'cooling' }
  /** Create the server (provisioning, or restoring after a renewal or a rebuild). */
  | { kind: 'provision' }
  /** The customer came back: wake the stopped or hibernated server. */
  | { kind: 'wake' }
  /** The plan changed: move the server to it (`rebuildsWhenUnfit` false: the path of histories before the patch). */
  | { kind: 'change_plan'; target: PlanId; rebuildsWhenUnfit: boolean }
  /** A deadline of the schedule (deadlines.ts) is due. */
  | { kind: 'deadline'; deadline: Deadline }
  /** Nothing to do: the cool-down (if any) is over; publish and wait. */
  | { kind: 'rest' };

export interface StepContext {
  customerId: string;
  config: LifecycleConfig;
  /** An update's request is queued. */
  queued: boolean;
  /** `patched()` of the workflow; asked only where the answer decides, as recorded histories expect. */
  patched: (patchId: string) => boolean;
}

/**
 * The main loop's priorities, in order: serve a queued request; complete when purged; enter the
 * phase that money (or its absence) calls for; then, unless cooling down after a failure: create
 * the server, wake it for the customer, move it to a changed plan, run the due deadline; else rest.
 * `enter` is applied before the step, in the same pass.
 */
export function nextStep(state: LifecycleState, now: number, ctx: StepContext): { enter: { phase: Phase; why: PhaseChange } | null; step: Step } {
  if (ctx.queued) return { enter: null, step: { kind: 'serve' } };
  if (state.phase === 'purged') return { enter: null, step: { kind: 'complete' } };
  const access = hasAccess(state.billing, ctx.config, now);
  const enter = access && state.phase === 'awaiting_payment' ? { phase: 'provisioning' as const, why: 'paid' as const }
    : access && state.phase === 'expired' ? { phase: 'restoring' as const, why: 'renewed' as const }
    : null;
  const phase = enter?.phase ?? state.phase;
  if (state.cooldownUntil !== null && toMs(state.cooldownUntil) > now) return { enter, step: { kind: 'cooling' } };
  if ((phase === 'provisioning' || phase === 'restoring') && state.retryAt === null) return { enter, step: { kind: 'provision' } };
  if (phase === 'serving' && state.server !== null) {
    if (state.wakeRequested && access) return { enter, step: { kind: 'wake' } };
    const target = state.billing.plan;
    if (target !== null && state.server.plan !== target && state.planChangeBlocked !== target) {
      if (!ctx.patched(lifecyclePatches.planChange)) return { enter, step: { kind: 'change_plan', target, rebuildsWhenUnfit: false } };
      // A hibernated server changes plan after it wakes: its snapshot keeps the old disk.
      if (state.server.power !== 'hibernated') return { enter, step: { kind: 'change_plan', target, rebuildsWhenUnfit: true } };
    }
  }
  const due = dueDeadline(scheduleInput({ ...state, phase }, now, ctx.customerId, ctx.config));
  return { enter, step: due === null ? { kind: 'rest' } : { kind: 'deadline', deadline: due } };
}

/**
 * The lifecycle's main loop decides with the pure nextStep (workflows/lifecycle/next-step.ts): one
 * test per priority, in the order the loop applies them, and the transitions table for every phase
 * change (and that nothing else in workflows/ changes the phase).
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveConfig, toIso, type Phase } from '../../workflows/deadlines.ts';
import { checkTransition, nextStep, transitions, type PhaseChange, type StepContext } from '../../workflows/lifecycle/next-step.ts';
import { initialState, lifecyclePatches, type LifecycleState, type ServerState } from '../../workflows/lifecycle/state.ts';
import { rootDir } from '../../scripts/services/paths.ts';

const day = 86_400_000;
const now = Date.parse('2026-06-01T12:00:00.000Z');
const config = resolveConfig({ idle: { afterMs: null, policy: 'stop' }, dailyBackupEveryMs: null });
const running: ServerState = { power: 'running', plan: 'starter', summary: { serverId: 's1', serverType: 'cx23', location: 'nbg1', ipv4: '127.0.0.2', createdAt: toIso(now - 10 * day) } };
const hibernated: ServerState = { power: 'hibernated', plan: 'starter', snapshotId: 'snap-1', serverType: 'cx23', location: 'nbg1' };

/** A state at `now`: paid until 20 days from now, renewing, on Starter, with `changes` applied. */
function state(changes: Partial<LifecycleState> = {}): LifecycleState {
  const base = initialState(toIso(now - day));
  return {
    ...base,
    billing: { ...base.billing, subscribed: true, plan: 'starter', periodEndsAt: toIso(now + 20 * day) },
    ...changes,
  };
}

const serving = (changes: Partial<LifecycleState> = {}) => state({ phase: 'serving', server: running, ...changes });
const unpaid = { billing: { ...initialState(toIso(now)).billing } };

/** The context of a pass; `asked` lists every patch id nextStep asked about. */
function context(changes: Partial<StepContext> = {}, patchedAnswer = true): StepContext & { asked: string[] } {
  const asked: string[] = [];
  return { customerId: 'c1', config, queued: false, patched: (id) => (asked.push(id), patchedAnswer), asked, ...changes };
}

describe('nextStep: the main loop priorities, in order', () => {
  it('1. a queued update request is served first, whatever else is due (even purged or cooling down)', () => {
    for (const s of [state({ phase: 'purged' }), serving({ cooldownUntil: toIso(now + day) }), state({ phase: 'awaiting_payment' })]) {
      expect(nextStep(s, now, context({ queued: true }))).toEqual({ enter: null, step: { kind: 'serve' } });
    }
  });

  it('2. purged: the run completes (no phase change, no other step)', () => {
    expect(nextStep(state({ phase: 'purged' }), now, context())).toEqual({ enter: null, step: { kind: 'complete' } });
  });

  it('3. money enters a phase in the same pass as the step: paid → provisioning, renewed after expiry → restoring', () => {
    expect(nextStep(state({ phase: 'awaiting_payment' }), now, context())).toEqual({ enter: { phase: 'provisioning', why: 'paid' }, step: { kind: 'provision' } });
    expect(nextStep(state({ phase: 'expired', dataKeptUntil: toIso(now + 5 * day) }), now, context()))
      .toEqual({ enter: { phase: 'restoring', why: 'renewed' }, step: { kind: 'provision' } });
    // Without access nothing is entered: still waiting for money, or still expired until the purge.
    expect(nextStep(state({ phase: 'awaiting_payment', ...unpaid }), now, context())).toEqual({ enter: null, step: { kind: 'rest' } });
    const lapsed = state({ phase: 'expired', dataKeptUntil: toIso(now - 1), billing: { ...state().billing, periodEndsAt: toIso(now - day) } });
    expect(nextStep(lapsed, now, context())).toEqual({ enter: null, step: { kind: 'deadline', deadline: { atMs: now - 1, action: { kind: 'purge' } } } });
  });

  it('4. cooling down after a failure: nothing runs before cooldownUntil (the phase is still entered); after it, steps run again', () => {
    const cooling = { cooldownUntil: toIso(now + 1) };
    expect(nextStep(state({ phase: 'awaiting_payment', ...cooling }), now, context())).toEqual({ enter: { phase: 'provisioning', why: 'paid' }, step: { kind: 'cooling' } });
    expect(nextStep(serving({ ...cooling, wakeRequested: true }), now, context()).step).toEqual({ kind: 'cooling' });
    expect(nextStep(state({ phase: 'provisioning', cooldownUntil: toIso(now) }), now, context()).step).toEqual({ kind: 'provision' });
  });

  it('5. provisioning or restoring creates the server, unless a failed attempt waits for its retry time', () => {
    expect(nextStep(state({ phase: 'provisioning' }), now, context()).step).toEqual({ kind: 'provision' });
    expect(nextStep(state({ phase: 'restoring' }), now, context()).step).toEqual({ kind: 'provision' });
    expect(nextStep(state({ phase: 'provisioning', retryAt: toIso(now + 1) }), now, context()).step).toEqual({ kind: 'rest' });
    expect(nextStep(state({ phase: 'restoring', retryAt: toIso(now) }), now, context()).step)
      .toEqual({ kind: 'deadline', deadline: { atMs: now, action: { kind: 'retry_provisioning' } } });
  });

  it('6. the customer came back: wake the idle server (before a plan change or a deadline), but only with access', () => {
    const back = serving({ server: { ...running, power: 'stopped' }, wakeRequested: true, billing: { ...state().billing, plan: 'pro' } });
    expect(nextStep(back, now, context()).step).toEqual({ kind: 'wake' });
    const ended = { ...back, billing: { ...back.billing, periodEndsAt: toIso(now - 1), cancelAtPeriodEnd: true } };
    expect(nextStep(ended, now, context()).step).toMatchObject({ kind: 'change_plan' });
  });

  it('7. a changed plan moves the server before any deadline; the patch is asked only then', () => {
    const toPro = serving({ billing: { ...state().billing, plan: 'pro', periodEndsAt: toIso(now - 1), cancelAtPeriodEnd: true } });
    const fits = context();
    expect(nextStep(toPro, now, fits).step).toEqual({ kind: 'change_plan', target: 'pro', rebuildsWhenUnfit: true });
    expect(fits.asked).toEqual([lifecyclePatches.planChange]);
    // Histories recorded before the patch take the old path, a hibernated server included.
    expect(nextStep(toPro, now, context({}, false)).step).toEqual({ kind: 'change_plan', target: 'pro', rebuildsWhenUnfit: false });
    expect(nextStep({ ...toPro, server: { ...hibernated } }, now, context({}, false)).step).toEqual({ kind: 'change_plan', target: 'pro', rebuildsWhenUnfit: false });
    // With the patch a hibernated server changes plan after it wakes: the due deadline runs instead.
    expect(nextStep({ ...toPro, server: { ...hibernated } }, now, context()).step).toMatchObject({ kind: 'deadline', deadline: { action: { kind: 'final_backup_and_delete' } } });
    // A plan whose change is blocked waits for the next billing event naming it; the patch is not asked.
    const blocked = context();
    expect(nextStep({ ...toPro, planChangeBlocked: 'pro' }, now, blocked).step).toMatchObject({ kind: 'deadline' });
    expect(blocked.asked).toEqual([]);
    const same = context();
    expect(nextStep(serving(), now, same).step).toEqual({ kind: 'rest' });
    expect(same.asked).toEqual([]);
  });

  it('8. the due deadline runs (the schedule of deadlines.ts orders them), read at the pass time', () => {
    const canceling = serving({ billing: { ...state().billing, cancelAtPeriodEnd: true, periodEndsAt: toIso(now + 7 * day) } });
    expect(nextStep(canceling, now, context()).step).toMatchObject({ kind: 'deadline', deadline: { action: { kind: 'reminder', daysLeft: 7 } } });
    expect(nextStep(canceling, now - 1, context()).step).toEqual({ kind: 'rest' });
  });

  it('9. nothing due: rest (the cool-down, if any, is over)', () => {
    expect(nextStep(serving({ cooldownUntil: toIso(now - 1) }), now, context())).toEqual({ enter: null, step: { kind: 'rest' } });
  });
});

describe('transitions: the only phase changes there are', () => {
  const phases: Phase[] = ['awaiting_payment', 'provisioning', 'restoring', 'serving', 'expired', 'purged'];
  const allowed = Object.entries(transitions).flatMap(([why, t]) => t.from.map((from) => `${from} → ${t.to} (${why})`));

  it('lists each phase change of the lifecycle once', () => {
    expect(allowed).toEqual([
      'awaiting_payment → provisioning (paid)',
      'expired → restoring (renewed)',
      'provisioning → serving (serverReady)',
      'restoring → serving (serverReady)',
      'serving → restoring (rebuildForPlan)',
      'serving → expired (accessEnded)',
      'expired → purged (retentionOver)',
    ]);
  });

  it('allows every listed change, with the timeline line it announces, and refuses every other', () => {
    for (const why of Object.keys(transitions) as PhaseChange[]) {
      for (const from of phases) {
        for (const to of phases) {
          const listed = allowed.includes(`${from} → ${to} (${why})`);
          if (listed) expect(checkTransition(from, to, why)).toBe(transitions[why].says);
          else expect(() => checkTransition(from, to, why), `${from} → ${to} (${why})`).toThrow(/no phase change/);
        }
      }
    }
    expect(checkTransition('awaiting_payment', 'provisioning', 'paid')).toBe('paid: provisioning');
    expect(checkTransition('serving', 'expired', 'accessEnded')).toBeNull();
  });

  it('every phase is reached from awaiting_payment, and purged is the only end', () => {
    const reached = new Set<Phase>(['awaiting_payment']);
    for (let grew = true; grew;) {
      grew = false;
      for (const t of Object.values(transitions)) {
        if (!reached.has(t.to) && t.from.some((f) => reached.has(f))) {
          reached.add(t.to);
          grew = true;
        }
      }
    }
    expect([...reached].sort()).toEqual([...phases].sort());
    expect(phases.filter((p) => !Object.values(transitions).some((t) => (t.from as readonly Phase[]).includes(p)))).toEqual(['purged']);
  });

  it('nothing in workflows/ assigns the phase except Lifecycle.enter', () => {
    const dir = path.join(rootDir, 'workflows');
    const files = readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
    const assignments = files.flatMap((f) => (readFileSync(path.join(dir, f), 'utf8').match(/\.phase\s*=(?!=)[^\n]*/g) ?? []).map((m) => `${f}: ${m}`));
    expect(assignments).toEqual(['lifecycle/lifecycle.ts: .phase = phase;']);
  });
});

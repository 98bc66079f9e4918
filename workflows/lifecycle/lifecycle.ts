/**
 * One customer's lifecycle as the workflow holds it: the carried state, what is not carried (the
 * queue of update requests, the running backup's progress), and the few helpers every role uses.
 * Like the ClusterManager of Temporal's safe-message-handlers sample, but the roles live in their
 * own modules (handlers.ts, steps.ts, publishing.ts) as functions of this object.
 */
import { condition, log, type ApplicationFailure } from '@temporalio/workflow';
import type { BackupInProgress } from '../messages.ts';
import { toIso, type LifecycleConfig, type Phase } from '../deadlines.ts';
import { checkTransition, type PhaseChange } from './next-step.ts';
import { bounds, pushBounded, type LifecycleState } from './state.ts';

/** Requests from updates, served one at a time by the main loop (it owns the server). */
export type Request =
  | { kind: 'backup_now'; key: string }
  | { kind: 'restore'; backupId: string; key: string }
  | { kind: 'power_on' }
  | { kind: 'power_off' }
  | { kind: 'apply_settings' };

export interface Pending {
  request: Request;
  done: boolean;
  result?: unknown;
  error?: ApplicationFailure;
}

export class Lifecycle {
  readonly customerId: string;
  readonly workflowId: string;
  readonly config: LifecycleConfig;
  readonly state: LifecycleState;
  readonly queue: Pending[] = [];
  /** Set by every message that may change what the loop does; the loop's wait ends on it. */
  changed = false;
  /** Not carried across continue-as-new: that happens only while no backup runs. */
  backupInProgress: BackupInProgress | null = null;

  constructor(customerId: string, workflowId: string, config: LifecycleConfig, state: LifecycleState) {
    this.customerId = customerId;
    this.workflowId = workflowId;
    this.config = config;
    this.state = state;
  }

  /** Adds a line to the timeline the state query shows (bounded) and to the workflow log. */
  note(what: string): void {
    pushBounded(this.state.timeline, { at: toIso(Date.now()), what }, bounds.timeline);
    log.info(what, { customerId: this.customerId });
  }

  attention(reason: string): void {
    this.state.needsAttention = true;
    this.state.attentionReason = reason;
    this.note(`needs attention: ${reason}`);
  }

  clearAttention(): void {
    if (this.state.needsAttention) this.note('attention cleared');
    this.state.needsAttention = false;
    this.state.attentionReason = null;
  }

  /** The only place the phase changes: checked against the transitions table (next-step.ts). */
  enter(phase: Phase, why: PhaseChange): void {
    const says = checkTransition(this.state.phase, phase, why);
    this.state.phase = phase;
    if (says !== null) this.note(says);
  }

  /** Queues an update's request for the main loop and waits for its answer. */
  async submit<T>(request: Request): Promise<T> {
    const pending: Pending = { request, done: false };
    this.queue.push(pending);
    await condition(() => pending.done);
    if (pending.error) throw pending.error;
    return pending.result as T;
  }
}

import type { LifecycleView } from '../workflows/messages.ts';

/**
 * Timeline lines a customer is shown: what happened to their server, backups, plan and mail. The
 * rest of the workflow's timeline is for operators (the Temporal Web UI): why something needs our
 * attention, failures with their internal messages, billing event ids, capacity retries. A line
 * is shown only if it matches here, so a new kind of note stays with the operators until added.
 */
const customerLines: readonly RegExp[] = [
  /^paid: provisioning$/,
  /^renewed after expiry: restoring$/,
  /^retention over: customer purged$/,
  /^server \S+ \([^)]*\) is up$/,
  /^server \S+ woken from snapshot \S+$/,
  /^server \S+ deleted after verified backup \S+$/,
  /^server powered (on|off by the customer)$/,
  /^idle: server \S+ (stopped|hibernated as snapshot \S+)$/,
  /^user activity( \(\w+\))?: waking the server$/,
  /^backup \S+ (verified \(\w+\)|restored|restored on request|is corrupt, falling back to the previous one)$/,
  /^no (usable )?backup (to restore|left): starting fresh$/,
  /^settings (applied|saved; applied when the server runs)$/,
  /^plan \w+: (server type changed to \S+|the server wakes as \S+)$/,
  /^mail sent: [\w-]+( \(\d+ days\))?$/,
];

/**
 * The lifecycle as its customer sees it (page data included): no attention reason, and only the
 * timeline lines meant for them.
 */
export function customerView(view: LifecycleView): LifecycleView {
  return { ...view, attentionReason: null, timeline: view.timeline.filter((t) => customerLines.some((line) => line.test(t.what))) };
}

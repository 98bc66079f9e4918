/**
 * Proves: the dashboard's page data carries no operator detail. Why a customer needs attention and
 * the internal messages of failures stay in the workflow (the Temporal Web UI); the customer sees
 * what happened to their server, backups, plan and mail.
 */
import { RouterContextProvider } from 'react-router';
import { expect, test } from 'vitest';
import type { User } from '../../db/database.ts';
import type { WebServices } from '../../api/services.ts';
import type { LifecycleView } from '../../workflows/messages.ts';
import { servicesContext } from '../../web/context.ts';
import { customerView } from '../../web/customer-view.ts';
import { loader } from '../../web/routes/dashboard.tsx';

const at = '2026-12-01T10:00:00.000Z';
/** One line of each kind the lifecycle writes, as it writes them. */
const shown = [
  'paid: provisioning',
  'server 4711 (cx23, fsn1) is up',
  'mail sent: server-ready',
  'mail sent: expiry-reminder (3 days)',
  'backup 3f1c-9a verified (periodic)',
  'backup 3f1c-9a restored',
  'backup 3f1c-9a restored on request',
  'backup 3f1c-9a is corrupt, falling back to the previous one',
  'no usable backup left: starting fresh',
  'settings applied',
  'settings saved; applied when the server runs',
  'idle: server 4711 stopped',
  'idle: server 4711 hibernated as snapshot 99',
  'user activity (dashboard): waking the server',
  'server 4711 woken from snapshot 99',
  'server powered on',
  'server powered off by the customer',
  'plan pro: server type changed to cx33',
  'server 4711 deleted after verified backup 3f1c-9a',
  'renewed after expiry: restoring',
  'retention over: customer purged',
];
const operatorsOnly = [
  'needs attention: provisioning failed (cx23 in fsn1: resource_unavailable; ssh 10.0.0.7: ECONNREFUSED)',
  'attention cleared',
  'billing: invoice.paid (evt_1QxYz)',
  'ignored stale billing event evt_1QxYz (customer.subscription.updated)',
  'mail server-ready failed: Resend answered 422: invalid from address berth@internal.example',
  'periodic backup failed: tar: /home/berth/.openclaw: Cannot open: Permission denied',
  'cx23 in fsn1 unavailable, trying the next candidate',
  'waking: cx23 in fsn1 cannot be had (CapacityUnavailable), trying the next candidate',
  'operator ops@berth approved deletion without a final backup',
  'hibernation snapshot 99 left for the operator to remove',
  'lifecycle started',
];

function view(): LifecycleView {
  return {
    customerId: 'c1', stage: 'active', plan: 'starter', accessEndsAt: at, willRenew: true, needsAttention: true,
    attentionReason: 'provisioning failed (cx23 in fsn1: resource_unavailable; ssh 10.0.0.7: ECONNREFUSED)',
    nextDeadline: null, server: null, recentBackups: [], backupInProgress: null, dataKeptUntil: null,
    timeline: [...shown, ...operatorsOnly].map((what) => ({ at, what })),
    settings: { model: null, timeZone: null, apiKeySaved: false, pending: false },
  };
}

test('the customer sees their server\'s story, and none of the operators\' lines', () => {
  const seen = customerView(view());
  expect(seen.attentionReason).toBeNull();
  expect(seen.needsAttention).toBe(true);
  expect(seen.timeline.map((t) => t.what)).toEqual(shown);
});

test('the dashboard\'s loader hands the page (and its .data request) only the customer\'s view', async () => {
  const context = new RouterContextProvider();
  context.set(servicesContext, {
    auth: { currentUser: async () => ({ id: 'u1', name: 'Ada' }) as User },
    customer: { view: async () => view() },
  } as unknown as WebServices);
  const request = new Request('http://localhost/dashboard');
  const data = await loader({ request, url: new URL(request.url), pattern: '/dashboard', context, params: {} } as unknown as Parameters<typeof loader>[0]);
  const text = JSON.stringify(data);
  for (const detail of ['ECONNREFUSED', 'evt_1QxYz', 'Resend answered', 'Permission denied', 'resource_unavailable', 'ops@berth']) expect(text).not.toContain(detail);
  expect(text).toContain('server 4711 (cx23, fsn1) is up');
});

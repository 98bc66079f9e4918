/**
 * Triggers local billing events for a user (local billing only: no STRIPE_SECRET_KEY):
 *   node scripts/billing.ts renew|fail|cancel|resume|expire|debit_paid|debit_failed <userId>
 * (debit_paid / debit_failed: the outcome of a checkout paid by SEPA Direct Debit.)
 * The running api turns each into the events Stripe would send, signed, through /webhooks/stripe.
 * APP_URL says where the api is (default http://localhost:3000).
 */
import { localDefaults } from '../lib/config.ts';

const actions = ['renew', 'fail', 'cancel', 'resume', 'expire', 'debit_paid', 'debit_failed'];
const [action, userId] = process.argv.slice(2);
if (!action || !userId || !actions.includes(action)) {
  process.stderr.write(`usage: node scripts/billing.ts ${actions.join('|')} <userId>\n`);
  process.exit(2);
}
const appUrl = process.env.APP_URL?.trim() || localDefaults.APP_URL;
const res = await fetch(`${appUrl}/local-billing/dev/${encodeURIComponent(userId)}/${action}`, { method: 'POST', headers: { accept: 'application/json' } });
const body = (await res.json().catch(() => ({}))) as { events?: { id: string; type: string; status: number }[]; error?: string };
if (!res.ok) {
  process.stderr.write(`${action} failed (HTTP ${res.status}): ${body.error ?? 'no details'}\n`);
  process.exit(1);
}
for (const e of body.events ?? []) process.stdout.write(`${e.type.padEnd(32)} ${e.id} -> ${e.status}\n`);

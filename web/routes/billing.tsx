import { Form, redirectDocument, useActionData, useLoaderData, useNavigation } from 'react-router';
import type { Route } from './+types/billing.ts';
import { clientOf, refused, requireUser, services } from '../auth.server.ts';
import { formatDate, formatMoney } from '../format.ts';
import { retryAfterHeaders } from '../headers.ts';

export const headers = retryAfterHeaders;

export function meta(_: Route.MetaArgs) {
  return [{ title: 'Billing — Berth' }];
}

export async function loader({ request, context }: Route.LoaderArgs) {
  const user = await requireUser(request, context);
  const billing = services(context).billing;
  const invoices = await billing.invoices(user.id);
  return {
    plans: billing.plans.map((p) => ({ id: p.id, name: p.name, price: formatMoney(p.displayPrice.amountMinor, p.displayPrice.currency),
      interval: p.displayPrice.interval, retentionDays: p.backupRetentionDays })),
    invoices: invoices.map((i) => ({ id: i.id, amount: formatMoney(i.amountMinor, i.currency), status: i.status,
      period: `${formatDate(i.periodStart)} – ${formatDate(i.periodEnd)}`, created: formatDate(i.createdAt), url: i.hostedInvoiceUrl })),
    // A fresh id per page view: resubmitting this form reuses its session, a new visit makes a new one.
    requestId: crypto.randomUUID().replaceAll('-', ''),
    notice: new URL(request.url).searchParams.get('notice'),
    emailVerified: user.emailVerifiedAt !== null,
  };
}

export async function action({ request, context }: Route.ActionArgs) {
  const user = await requireUser(request, context);
  const form = Object.fromEntries(await request.formData());
  if (form.intent === 'resend-verification') {
    const sent = await services(context).auth.resendVerification(user, clientOf(context));
    return sent.ok ? { errors: {} as Record<string, string | undefined>, message: sent.value.message } : refused(sent, { errors: sent.errors, message: null });
  }
  const billing = services(context).billing;
  const result = form.intent === 'portal' ? await billing.portal(user, form) : await billing.checkout(user, form);
  if (!result.ok) return { errors: result.errors, message: null };
  // Checkout and portal pages are not this app's routes (Stripe's, or the local stand-in's): a full page load.
  return redirectDocument(result.value.url);
}

export default function Billing() {
  const { plans, invoices, requestId, notice, emailVerified } = useLoaderData<typeof loader>();
  const data = useActionData<typeof action>();
  const busy = useNavigation().state !== 'idle';
  return (
    <>
      {notice === 'success' && <p className="notice" role="status">Thank you! Your payment went through; we are setting up your server.</p>}
      {notice === 'canceled' && <p className="notice" role="status">Checkout was canceled; nothing was charged.</p>}
      {(data?.errors.form || data?.errors.plan) && <p className="error" role="alert">{data.errors.form ?? data.errors.plan}</p>}
      {data?.message && <p className="notice" role="status">{data.message}</p>}
      {!emailVerified && (
        <Form method="post" className="attention">
          Confirm your email address before you subscribe: open the link we mailed you.{' '}
          <button type="submit" name="intent" value="resend-verification" className="secondary" disabled={busy}>Send the link again</button>
        </Form>
      )}
      <section className="card">
        <h1>Plans</h1>
        <div className="plans">
          {plans.map((plan) => (
            <Form method="post" key={plan.id} className="plan">
              <h2>{plan.name}</h2>
              <p className="price">{plan.price}<span className="muted"> / {plan.interval}</span></p>
              <p className="muted">Backups kept {plan.retentionDays} days after your subscription ends.</p>
              <input type="hidden" name="plan" value={plan.id} />
              <input type="hidden" name="requestId" value={requestId} />
              <button type="submit" name="intent" value="checkout" disabled={busy}>Subscribe to {plan.name}</button>
            </Form>
          ))}
        </div>
        <Form method="post" className="inline">
          <input type="hidden" name="requestId" value={requestId} />
          <button type="submit" name="intent" value="portal" className="secondary" disabled={busy}>Manage card, plan or cancellation</button>
        </Form>
      </section>
      <section className="card">
        <h2>Invoices</h2>
        {invoices.length === 0 ? (
          <p className="muted">No invoices yet.</p>
        ) : (
          <table className="table">
            <thead><tr><th>Date</th><th>Period</th><th>Amount</th><th>Status</th><th /></tr></thead>
            <tbody>
              {invoices.map((i) => (
                <tr key={i.id}>
                  <td>{i.created}</td><td>{i.period}</td><td>{i.amount}</td><td><span className={`badge ${i.status}`}>{i.status}</span></td>
                  <td>{i.url && <a href={i.url}>View</a>}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
    </>
  );
}

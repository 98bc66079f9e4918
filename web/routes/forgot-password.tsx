import { Form, Link, useActionData, useNavigation } from 'react-router';
import type { Route } from './+types/forgot-password.ts';
import { clientOf, refused, services } from '../auth.server.ts';
import { retryAfterHeaders } from '../headers.ts';

export const headers = retryAfterHeaders;

export function meta(_: Route.MetaArgs) {
  return [{ title: 'Reset your password — Berth' }];
}

export async function action({ request, context }: Route.ActionArgs) {
  const form = Object.fromEntries(await request.formData());
  const result = await services(context).auth.requestPasswordReset(form, clientOf(context));
  return result.ok ? { sent: true as const, errors: {} } : refused(result, { sent: false as const, errors: result.errors });
}

export default function ForgotPassword() {
  const data = useActionData<typeof action>();
  const busy = useNavigation().state !== 'idle';
  if (data?.sent) {
    return (
      <section className="card narrow">
        <h1>Check your email</h1>
        <p role="status">If an account uses that address, we just sent it a link to choose a new password. The link works for an hour.</p>
        <p><Link to="/login">Back to sign in</Link></p>
      </section>
    );
  }
  return (
    <section className="card narrow">
      <h1>Reset your password</h1>
      <p className="muted">Tell us your email address and we send you a link to choose a new password.</p>
      <Form method="post" className="form" noValidate>
        <label>
          Email
          <input name="email" type="email" autoComplete="email" aria-invalid={Boolean(data?.errors.email)} />
          {data?.errors.email && <span className="error">{data.errors.email}</span>}
        </label>
        {data?.errors.form && <p className="error" role="alert">{data.errors.form}</p>}
        <button type="submit" disabled={busy}>{busy ? 'Sending…' : 'Send the link'}</button>
      </Form>
    </section>
  );
}

import { Form, Link, redirect, useActionData, useNavigation, useSearchParams } from 'react-router';
import type { Route } from './+types/reset-password.ts';
import { clientOf, refused, services } from '../auth.server.ts';
import { retryAfterHeaders } from '../headers.ts';

export const headers = retryAfterHeaders;

export function meta(_: Route.MetaArgs) {
  return [{ title: 'Choose a new password — Berth' }];
}

export async function action({ request, context }: Route.ActionArgs) {
  const form = Object.fromEntries(await request.formData());
  const result = await services(context).auth.resetPassword(form, clientOf(context));
  if (!result.ok) return refused(result, { errors: result.errors });
  return redirect('/dashboard', { headers: { 'Set-Cookie': result.value.setCookie } });
}

export default function ResetPassword() {
  const data = useActionData<typeof action>();
  const [params] = useSearchParams();
  const busy = useNavigation().state !== 'idle';
  return (
    <section className="card narrow">
      <h1>Choose a new password</h1>
      {(data?.errors.form || data?.errors.token) && (
        <p className="error" role="alert">{data.errors.form ?? data.errors.token} <Link to="/forgot-password">Ask for a new link</Link></p>
      )}
      <Form method="post" className="form" noValidate>
        <input type="hidden" name="token" value={params.get('token') ?? ''} />
        <label>
          New password
          <input name="password" type="password" autoComplete="new-password" aria-invalid={Boolean(data?.errors.password)} />
          {data?.errors.password && <span className="error">{data.errors.password}</span>}
        </label>
        <button type="submit" disabled={busy}>{busy ? 'Saving…' : 'Save and sign in'}</button>
      </Form>
    </section>
  );
}

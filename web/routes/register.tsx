import { Form, Link, redirect, useActionData, useNavigation } from 'react-router';
import type { Route } from './+types/register.ts';
import { clientOf, refused, services } from '../auth.server.ts';
import { retryAfterHeaders } from '../headers.ts';

export const headers = retryAfterHeaders;

export function meta(_: Route.MetaArgs) {
  return [{ title: 'Create your account — Berth' }];
}

export async function loader({ request, context }: Route.LoaderArgs) {
  if (await services(context).auth.currentUser(request.headers.get('cookie'))) throw redirect('/dashboard');
  return null;
}

export async function action({ request, context }: Route.ActionArgs) {
  const form = Object.fromEntries(await request.formData());
  const result = await services(context).auth.register(form, clientOf(context));
  const values = { name: String(form.name ?? ''), email: String(form.email ?? '') };
  if (!result.ok) return refused(result, { sent: false as const, errors: result.errors, values });
  // The same page whether the address was new or had an account: the mail says which.
  return { sent: true as const, errors: {} as Record<string, string | undefined>, values };
}

export default function Register() {
  const data = useActionData<typeof action>();
  const busy = useNavigation().state !== 'idle';
  if (data?.sent) {
    return (
      <section className="card narrow">
        <h1>Check your email</h1>
        <p role="status">We sent a mail to {data.values.email}. Open the link in it to confirm your address, then sign in. If you already have an account, the mail tells you how to get back in.</p>
        <p><Link to="/login">Go to sign in</Link></p>
      </section>
    );
  }
  return (
    <section className="card narrow">
      <h1>Create your account</h1>
      {data?.errors.form && <p className="error" role="alert">{data.errors.form}</p>}
      <Form method="post" className="form" noValidate>
        <label>
          Name
          <input name="name" autoComplete="name" defaultValue={data?.values.name} aria-invalid={Boolean(data?.errors.name)} />
          {data?.errors.name && <span className="error">{data.errors.name}</span>}
        </label>
        <label>
          Email
          <input name="email" type="email" autoComplete="email" defaultValue={data?.values.email} aria-invalid={Boolean(data?.errors.email)} />
          {data?.errors.email && <span className="error">{data.errors.email}</span>}
        </label>
        <label>
          Password
          <input name="password" type="password" autoComplete="new-password" aria-invalid={Boolean(data?.errors.password)} />
          {data?.errors.password && <span className="error">{data.errors.password}</span>}
        </label>
        <button type="submit" disabled={busy}>{busy ? 'Creating…' : 'Create account'}</button>
      </Form>
      <p className="muted">Have an account? <Link to="/login">Sign in</Link></p>
    </section>
  );
}

import { Form, Link, redirect, useActionData, useNavigation, useSearchParams } from 'react-router';
import type { Route } from './+types/login.ts';
import { clientOf, refused, safeNext, services } from '../auth.server.ts';
import { retryAfterHeaders } from '../headers.ts';

export const headers = retryAfterHeaders;

export function meta(_: Route.MetaArgs) {
  return [{ title: 'Sign in — Berth' }];
}

export async function loader({ request, context }: Route.LoaderArgs) {
  if (await services(context).auth.currentUser(request.headers.get('cookie'))) {
    throw redirect(safeNext(new URL(request.url).searchParams.get('next')));
  }
  return null;
}

export async function action({ request, context }: Route.ActionArgs) {
  const form = Object.fromEntries(await request.formData());
  const result = await services(context).auth.login(form, clientOf(context));
  if (!result.ok) return refused(result, { errors: result.errors, email: String(form.email ?? '') });
  return redirect(safeNext(String(form.next ?? '')), { headers: { 'Set-Cookie': result.value.setCookie } });
}

export default function Login() {
  const data = useActionData<typeof action>();
  const [params] = useSearchParams();
  const busy = useNavigation().state !== 'idle';
  return (
    <section className="card narrow">
      <h1>Sign in</h1>
      {data?.errors.form && <p className="error" role="alert">{data.errors.form}</p>}
      <Form method="post" className="form" noValidate>
        <input type="hidden" name="next" value={params.get('next') ?? ''} />
        <label>
          Email
          <input name="email" type="email" autoComplete="email" defaultValue={data?.email} aria-invalid={Boolean(data?.errors.email)} />
          {data?.errors.email && <span className="error">{data.errors.email}</span>}
        </label>
        <label>
          Password
          <input name="password" type="password" autoComplete="current-password" aria-invalid={Boolean(data?.errors.password)} />
          {data?.errors.password && <span className="error">{data.errors.password}</span>}
        </label>
        <button type="submit" disabled={busy}>{busy ? 'Signing in…' : 'Sign in'}</button>
      </Form>
      <p className="muted"><Link to="/forgot-password">Forgot your password?</Link> · New here? <Link to="/register">Create an account</Link></p>
    </section>
  );
}

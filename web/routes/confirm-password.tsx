import { Form, redirect, useActionData, useNavigation, useSearchParams } from 'react-router';
import type { Route } from './+types/confirm-password.ts';
import { clientOf, refused, requireUser, safeNext, services } from '../auth.server.ts';
import { retryAfterHeaders } from '../headers.ts';

export const headers = retryAfterHeaders;

export function meta(_: Route.MetaArgs) {
  return [{ title: 'Confirm your password — Berth' }];
}

export async function loader({ request, context }: Route.LoaderArgs) {
  const user = await requireUser(request, context);
  return { email: user.email };
}

export async function action({ request, context }: Route.ActionArgs) {
  await requireUser(request, context);
  const form = Object.fromEntries(await request.formData());
  const result = await services(context).auth.confirmPassword(request.headers.get('cookie'), form, clientOf(context));
  if (!result.ok) return refused(result, { errors: result.errors });
  return redirect(safeNext(String(form.next ?? '')));
}

/** Asked before a sensitive step (a terminal on the customer's server) when the password was typed a while ago. */
export default function ConfirmPassword() {
  const data = useActionData<typeof action>();
  const [params] = useSearchParams();
  const busy = useNavigation().state !== 'idle';
  return (
    <section className="card narrow">
      <h1>Confirm your password</h1>
      <p className="muted">A terminal opens a shell on your server, so we ask for your password again first.</p>
      {data?.errors.form && <p className="error" role="alert">{data.errors.form}</p>}
      <Form method="post" className="form" noValidate>
        <input type="hidden" name="next" value={params.get('next') ?? ''} />
        <label>
          Password
          <input name="password" type="password" autoComplete="current-password" aria-invalid={Boolean(data?.errors.password)} />
          {data?.errors.password && <span className="error">{data.errors.password}</span>}
        </label>
        <button type="submit" disabled={busy}>{busy ? 'Checking…' : 'Confirm'}</button>
      </Form>
    </section>
  );
}

import { Link, useLoaderData } from 'react-router';
import type { Route } from './+types/verify-email.ts';
import { clientOf, services } from '../auth.server.ts';

export function meta(_: Route.MetaArgs) {
  return [{ title: 'Confirm your email — Berth' }];
}

export async function loader({ request, context }: Route.LoaderArgs) {
  const token = new URL(request.url).searchParams.get('token') ?? '';
  return { verified: await services(context).auth.verifyEmail(token, clientOf(context)) };
}

export default function VerifyEmail() {
  const { verified } = useLoaderData<typeof loader>();
  return (
    <section className="card narrow">
      <h1>{verified ? 'Email address confirmed' : 'This link does not work'}</h1>
      <p role="status">{verified ? 'Thank you: your email address is confirmed.' : 'The link is incomplete or has expired. Sign in and we can send you a new one.'}</p>
      <p><Link to="/dashboard">Go to your dashboard</Link></p>
    </section>
  );
}

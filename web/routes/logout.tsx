import { redirect } from 'react-router';
import type { Route } from './+types/logout.ts';
import { services } from '../auth.server.ts';

export async function action({ request, context }: Route.ActionArgs) {
  const setCookie = await services(context).auth.logout(request.headers.get('cookie'));
  return redirect('/', { headers: { 'Set-Cookie': setCookie } });
}

export async function loader() {
  return redirect('/');
}

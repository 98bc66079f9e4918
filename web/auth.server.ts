import { redirect, type RouterContextProvider } from 'react-router';
import type { User } from '../db/database.ts';
import { servicesContext } from './context.ts';

export function services(context: Readonly<RouterContextProvider>) {
  return context.get(servicesContext);
}

/** The signed-in user, or a redirect to the login page that comes back here afterwards. */
export async function requireUser(request: Request, context: Readonly<RouterContextProvider>): Promise<User> {
  const user = await services(context).auth.currentUser(request.headers.get('cookie'));
  if (!user) {
    const url = new URL(request.url);
    throw redirect(`/login?next=${encodeURIComponent(url.pathname + url.search)}`);
  }
  return user;
}

/** Only same-site paths are followed after login, never another host. */
export function safeNext(next: string | null): string {
  return next && next.startsWith('/') && !next.startsWith('//') ? next : '/dashboard';
}

import { data, redirect, type RouterContextProvider } from 'react-router';
import type { User } from '../db/database.ts';
import type { Client, FormResult } from '../api/services.ts';
import { requestContext, servicesContext } from './context.ts';

export function services(context: Readonly<RouterContextProvider>) {
  return context.get(servicesContext);
}

/** Who sent the request (throttling counts by the client's address). */
export function clientOf(context: Readonly<RouterContextProvider>): Client {
  return { ip: context.get(requestContext).clientIp };
}

/**
 * An action's answer to a refused form: `payload` with 429 and Retry-After when the form came too
 * often, 503 when Berth was too busy to check a password, 400 otherwise.
 */
export function refused<T>(result: Extract<FormResult<unknown>, { ok: false }>, payload: T) {
  const status = result.retryAfterSeconds === undefined ? 400 : result.busy ? 503 : 429;
  return data(payload, { status, headers: result.retryAfterSeconds === undefined ? {} : { 'Retry-After': String(result.retryAfterSeconds) } });
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

const nowhere = 'http://berth.invalid';

/**
 * Where to go after signing in: a path on this site, or the dashboard. Refused: anything not
 * starting with one '/', backslashes (browsers read them as '/'), control characters and spaces
 * (browsers drop tabs and newlines, so `/\t/evil.example` becomes `//evil.example`), and paths that
 * normalise to `//host` (`/.//evil.example`), also after percent-decoding. What is returned is the
 * normalised path itself.
 */
export function safeNext(next: string | null | undefined): string {
  const fallback = '/dashboard';
  if (!next || next.length > 2000) return fallback;
  // Checked as given and once percent-decoded (`/%09/evil.example`, `/%2F/evil.example`): a later
  // decoding step, ours or a browser's, must not find a host in it either.
  let decoded: string;
  try {
    decoded = decodeURIComponent(next);
  } catch {
    return fallback;
  }
  for (const form of [next, decoded]) {
    if (!form.startsWith('/') || form.startsWith('//') || /[\\\x00-\x20\x7f]/.test(form)) return fallback;
  }
  let url: URL;
  try {
    url = new URL(next, nowhere);
  } catch {
    return fallback;
  }
  const path = url.pathname + url.search + url.hash;
  return url.origin === nowhere && path.startsWith('/') && !path.startsWith('//') ? path : fallback;
}

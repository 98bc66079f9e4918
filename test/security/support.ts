/**
 * What the security probes share: requests as a browser on another site (or no browser) would send
 * them, a client address of their own per probe (the app trusts X-Forwarded-For from loopback, as
 * from its TLS proxy), and extra web servers with settings of their own on the same stack.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import { localDefaults } from '../../lib/config.ts';
import { startWebProcess } from '../support/berth-stack.ts';

export const berth = inject('berth');

/** A made-up client address (TEST-NET-2), different for each call, so probes do not share a throttle. */
export function clientAddress(): string {
  const b = randomBytes(2);
  return `198.51.${b[0]}.${b[1]! % 254 + 1}`;
}

/** A form post as the app's own page sends it: same Origin, from `ip`, with `cookie` if given. */
export async function postForm(url: string, fields: Record<string, string>, opts: { origin?: string | null; ip?: string; cookie?: string; headers?: Record<string, string> } = {}): Promise<Response> {
  const origin = opts.origin === undefined ? new URL(url).origin : opts.origin;
  return fetch(url, {
    method: 'POST',
    redirect: 'manual',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      ...(origin !== null ? { origin } : {}),
      'x-forwarded-for': opts.ip ?? clientAddress(),
      ...(opts.cookie ? { cookie: opts.cookie } : {}),
      ...opts.headers,
    },
    body: new URLSearchParams(fields).toString(),
  });
}

/** The name=value pairs a response sets, as a Cookie header. */
export function cookiesOf(res: Response): string {
  return res.headers.getSetCookie().map((c) => c.split(';')[0]!).filter((c) => !c.endsWith('=')).join('; ');
}

/** Random production secrets for a web server started outside local mode. */
export function productionEnv(): Record<string, string> {
  return {
    BERTH_MODE: 'production',
    NODE_ENV: 'production',
    APP_URL: 'https://berth.example',
    STRIPE_SECRET_KEY: `sk_test_${randomBytes(12).toString('hex')}`,
    STRIPE_WEBHOOK_SECRET: `whsec_${randomBytes(12).toString('hex')}`,
    SESSION_SECRET: randomBytes(32).toString('base64'),
    MASTER_KEY: randomBytes(32).toString('base64'),
    MASTER_KEY_ID: 'k1',
    // The stack's data is sealed under the local key: a process refuses to start without every key in use.
    MASTER_KEYS_PREVIOUS: `${localDefaults.MASTER_KEY_ID}:${localDefaults.MASTER_KEY}`,
    RESEND_API_KEY: `re_${randomBytes(12).toString('hex')}`,
    // Nothing is sent in these probes; an address that answers nothing keeps it so.
    RESEND_BASE_URL: 'http://127.0.0.1:9/',
    // Forwarded addresses are trusted from loopback, where the probes stand in for the TLS proxy.
    TRUST_PROXY: 'loopback',
  };
}

/** A web server on the probes' stack with `env` on top of the stack's; stopped by the caller. */
export async function startExtraWeb(env: Record<string, string>, name = 'web2') {
  const lines: string[] = [];
  const web = await startWebProcess({ appEnv: { ...berth.appEnv, ...env }, sink: (_n, line) => { lines.push(line); }, name });
  return { ...web, log: () => lines.join('\n') };
}

/** Mails the stack's mail catcher holds for `to` (newest last). */
export async function mailsTo(to: string, mailUrl = berth.mailUrl): Promise<{ subject: string; text: string }[]> {
  const mails = (await (await fetch(`${mailUrl}/api/email`)).json()) as { subject: string; text: string; to: { address: string }[] }[];
  return mails.filter((m) => m.to.some((t) => t.address.toLowerCase() === to.toLowerCase()));
}

/** Waits for a mail to `to` with `subject` and returns the first link to `path` in it. */
export async function mailedLink(to: string, subject: string, path: string, timeoutMs = 20_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const mail = (await mailsTo(to)).reverse().find((m) => m.subject === subject);
    const link = mail?.text.match(new RegExp(`https?://\\S*${path}\\?token=[\\w.-]+`))?.[0];
    if (link) return link;
    if (Date.now() > deadline) throw new Error(`no "${subject}" mail to ${to} in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export interface Account {
  name: string;
  email: string;
  password: string;
  /** The session cookie of a sign-in (Cookie header form). */
  cookie: string;
}

/** An account made as a person makes one (register, confirm by mail, sign in), on `appUrl`. */
export async function createAccount(opts: { appUrl?: string; name?: string } = {}): Promise<Account> {
  const appUrl = opts.appUrl ?? berth.appUrl;
  const tag = randomBytes(6).toString('hex');
  const account = { name: opts.name ?? `Probe ${tag}`, email: `probe.${tag}@example.com`, password: `correct horse ${tag}` };
  const registered = await postForm(`${appUrl}/register`, account);
  if (registered.status !== 200) throw new Error(`registration answered ${registered.status}`);
  const link = await mailedLink(account.email, 'Confirm your email address', '/verify-email');
  const confirmed = await fetch(link.replace(/^https?:\/\/[^/]+/, appUrl));
  if (!(await confirmed.text()).includes('Email address confirmed')) throw new Error('the confirmation link did not confirm');
  return { ...account, cookie: await signIn(account, appUrl) };
}

/** Signs in through the sign-in form; returns the session cookie. */
export async function signIn(account: { email: string; password: string }, appUrl = berth.appUrl, ip = clientAddress()): Promise<string> {
  const res = await postForm(`${appUrl}/login`, { email: account.email, password: account.password }, { ip });
  if (res.status !== 302) throw new Error(`sign-in answered ${res.status}`);
  return cookiesOf(res);
}

/** The status of a page fetched with `cookie`, without following redirects, and where it redirects. */
export async function visit(path: string, cookie: string, appUrl = berth.appUrl): Promise<{ status: number; location: string | null; body: string }> {
  const res = await fetch(`${appUrl}${path}`, { redirect: 'manual', headers: { cookie } });
  return { status: res.status, location: res.headers.get('location'), body: await res.text() };
}

/** One query on the stack's database (to look at what a probe changed, or to set up what it needs). */
export async function query<R extends object>(text: string, values: unknown[] = []): Promise<R[]> {
  const client = new pg.Client({ connectionString: berth.databaseUrl });
  await client.connect();
  try {
    return (await client.query<R>(text, values)).rows;
  } finally {
    await client.end();
  }
}

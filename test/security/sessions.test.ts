import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { WebSocket } from 'ws';
import { launchBrowser } from '../support/browser.ts';
import { berth, clientAddress, createAccount, mailedLink, postForm, signIn, startExtraWeb, visit, type Account } from './support.ts';

const { appUrl } = berth;

/** Opens the chat socket with `cookie`; resolves once open, with a promise of its close code. */
function openChat(url: string, cookie: string): Promise<{ ws: WebSocket; closed: Promise<{ code: number; at: number }> }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url.replace('http', 'ws')}/ws/chat`, { headers: { cookie, origin: new URL(url).origin } });
    const closed = new Promise<{ code: number; at: number }>((r) => ws.once('close', (code) => r({ code, at: Date.now() })));
    ws.once('open', () => resolve({ ws, closed }));
    ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade answered ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

describe('the session cookie', () => {
  test('is __Host- prefixed, Secure, HttpOnly, SameSite=Lax, for the whole site and no other host', async () => {
    const account = await createAccount();
    const res = await postForm(`${appUrl}/login`, { email: account.email, password: account.password });
    const set = res.headers.getSetCookie().find((c) => c.startsWith('__Host-berth_session='))!;
    expect(set).toBeDefined();
    const attributes = set.split(';').slice(1).map((a) => a.trim().toLowerCase());
    expect(attributes).toEqual(expect.arrayContaining(['path=/', 'httponly', 'secure', 'samesite=lax']));
    expect(attributes.some((a) => a.startsWith('domain'))).toBe(false);
    expect(set.split(';')[0]!.split('=')[1]!.length).toBeGreaterThanOrEqual(43);
  });

  test('a real browser keeps it on this http://localhost app, signs in and reaches the dashboard', async () => {
    const account = await createAccount();
    const browser = await launchBrowser();
    try {
      const page = await browser.newPage();
      await page.goto(`${appUrl}/login?next=%2Fsettings`);
      await page.getByLabel('Email').fill(account.email);
      await page.getByLabel('Password').fill(account.password);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.waitForURL('**/settings');
      const cookies = await page.context().cookies();
      expect(cookies.map((c) => c.name)).toContain('__Host-berth_session');
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.waitForURL(`${appUrl}/`);
      expect((await page.context().cookies()).map((c) => c.name)).not.toContain('__Host-berth_session');
    } finally {
      await browser.close();
    }
  });
});

describe('signing out', () => {
  test('happens only by a same-origin POST: a link or another site\'s form leaves the session alone', async () => {
    const account = await createAccount();
    await fetch(`${appUrl}/logout`, { headers: { cookie: account.cookie }, redirect: 'manual' });
    expect((await visit('/dashboard', account.cookie)).status).toBe(200);
    const forged = await postForm(`${appUrl}/logout`, {}, { cookie: account.cookie, origin: 'http://evil.example' });
    expect(forged.status).toBe(403);
    expect((await visit('/dashboard', account.cookie)).status).toBe(200);
    const real = await postForm(`${appUrl}/logout`, {}, { cookie: account.cookie });
    expect(real.status).toBe(302);
    expect(real.headers.getSetCookie().join()).toMatch(/__Host-berth_session=;.*Max-Age=0/);
    expect((await visit('/dashboard', account.cookie)).location).toBe('/login?next=%2Fdashboard');
  });

  test('closes that session\'s open sockets at once, and only that session\'s', async () => {
    const account = await createAccount();
    const other = await signIn(account);
    const mine = await openChat(appUrl, account.cookie);
    const theirs = await openChat(appUrl, other);
    const signedOutAt = Date.now();
    expect((await postForm(`${appUrl}/logout`, {}, { cookie: account.cookie })).status).toBe(302);
    const closed = await mine.closed;
    expect(closed.code).toBe(4401);
    expect(closed.at - signedOutAt).toBeLessThan(2_000);
    expect(theirs.ws.readyState).toBe(WebSocket.OPEN);
    theirs.ws.close();
  });

  test('a password reset ends every session and closes every socket of the customer', async () => {
    const account = await createAccount();
    const second = await signIn(account);
    const sockets = await Promise.all([openChat(appUrl, account.cookie), openChat(appUrl, second)]);
    expect((await postForm(`${appUrl}/forgot-password`, { email: account.email })).status).toBe(200);
    const link = await mailedLink(account.email, 'Reset your Berth password', '/reset-password');
    const token = new URL(link).searchParams.get('token')!;
    const reset = await postForm(`${appUrl}/reset-password`, { token, password: 'a brand new password 1' });
    expect(reset.status).toBe(302);
    for (const s of sockets) expect((await s.closed).code).toBe(4401);
    for (const cookie of [account.cookie, second]) expect((await visit('/dashboard', cookie)).status).toBe(302);
  });
});

describe('expiry', () => {
  let web: Awaited<ReturnType<typeof startExtraWeb>>;
  beforeAll(async () => {
    // The same app with short limits: idle 3 s, absolute 9 s, re-authentication 4 s.
    web = await startExtraWeb({ SESSION_IDLE_SECONDS: '3', SESSION_LIFETIME_SECONDS: '9', REAUTH_SECONDS: '4' }, 'web-short');
  });
  afterAll(async () => {
    await web?.process.stop();
  });
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  test('a session unused for the idle timeout is over, and its open socket closes by itself', async () => {
    const account = await createAccount({ appUrl: web.url });
    const socket = await openChat(web.url, account.cookie);
    const opened = Date.now();
    expect((await visit('/dashboard', account.cookie, web.url)).status).toBe(200);
    const closed = await socket.closed;
    expect(closed.code).toBe(4401);
    expect(closed.at - opened).toBeGreaterThan(2_500);
    expect(closed.at - opened).toBeLessThan(6_000);
    expect((await visit('/dashboard', account.cookie, web.url)).status).toBe(302);
  });

  test('an active session still ends at its absolute lifetime', async () => {
    const account = await createAccount({ appUrl: web.url });
    const started = Date.now();
    let last = 200;
    while (Date.now() - started < 12_000 && last === 200) {
      last = (await visit('/dashboard', account.cookie, web.url)).status;
      if (last === 200) await sleep(1_000);
    }
    expect(last).toBe(302);
    expect(Date.now() - started).toBeGreaterThan(8_000);
  });

  test('a terminal and a new API key need a password typed recently', async () => {
    const account = await createAccount({ appUrl: web.url });
    expect((await visit('/terminal', account.cookie, web.url)).status).toBe(200);
    // Keep the session itself alive (idle 3 s), past the re-authentication window (4 s).
    for (let i = 0; i < 5; i++) {
      await sleep(1_000);
      expect((await visit('/dashboard', account.cookie, web.url)).status).toBe(200);
    }
    expect((await visit('/terminal', account.cookie, web.url)).location).toBe('/confirm-password?next=%2Fterminal');
    const socket = await new Promise<{ code: number; first: string }>((resolve, reject) => {
      const ws = new WebSocket(`${web.url.replace('http', 'ws')}/ws/terminal`, { headers: { cookie: account.cookie, origin: web.origin } });
      let first = '';
      ws.once('message', (d) => { first = String(d); });
      ws.once('close', (code) => resolve({ code, first }));
      ws.once('error', reject);
    });
    expect(socket.code).toBe(4403);
    expect(JSON.parse(socket.first)).toEqual({ type: 'error', message: 'Confirm your password to open a terminal: reload this page.' });
    const settings = await postForm(`${web.url}/settings`, { model: 'anthropic/claude-sonnet-4-5', timeZone: '', apiKey: 'sk-ant-0123456789abcdefghijklmnop' }, { cookie: account.cookie });
    expect(await settings.text()).toContain('Enter your password to change the API key.');
    const wrong = await postForm(`${web.url}/confirm-password`, { password: 'not my password', next: '/terminal' }, { cookie: account.cookie });
    expect(await wrong.text()).toContain('That is not your password.');
    const right = await postForm(`${web.url}/confirm-password`, { password: account.password, next: '/terminal' }, { cookie: account.cookie, ip: clientAddress() });
    expect(right.status).toBe(302);
    expect(right.headers.get('location')).toBe('/terminal');
    expect((await visit('/terminal', account.cookie, web.url)).status).toBe(200);
  });
});

export type { Account };

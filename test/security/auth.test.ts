import { describe, expect, test } from 'vitest';
import { berth, clientAddress, createAccount, mailsTo, postForm, signIn, visit } from './support.ts';

const { appUrl } = berth;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A sign-in attempt: its status and Retry-After (seconds) when throttled. */
async function attempt(email: string, password: string, ip: string): Promise<{ status: number; retryAfter: number | null }> {
  const res = await postForm(`${appUrl}/login`, { email, password }, { ip });
  await res.text();
  const retry = res.headers.get('retry-after');
  return { status: res.status, retryAfter: retry === null ? null : Number(retry) };
}

describe('throttling', () => {
  test('wrong passwords for one account meet growing delays (1, 2, 4, 8 s after five free tries), from any address', async () => {
    const account = await createAccount();
    const curve: { status: number; retryAfter: number | null }[] = [];
    for (let i = 0; i < 5; i++) curve.push(await attempt(account.email, 'wrong password', clientAddress()));
    expect(curve.map((c) => c.status)).toEqual([400, 400, 400, 400, 400]);
    // Each further failure starts a block twice as long as the one before; while it lasts, even the
    // right password from a new address is refused, and not counted.
    const delays: number[] = [];
    for (let step = 0; step < 4; step++) {
      const failed = await attempt(account.email, 'wrong password', clientAddress());
      expect(failed.status).toBe(400);
      const refused = await attempt(account.email, account.password, clientAddress());
      expect(refused.status).toBe(429);
      delays.push(refused.retryAfter!);
      await sleep(refused.retryAfter! * 1000 + 200);
    }
    expect(delays).toEqual([1, 2, 4, 8]);
    // The right password after the wait gets in, and clears the account's count.
    expect(await signIn(account, appUrl, clientAddress())).toContain('__Host-berth_session=');
    expect((await attempt(account.email, 'wrong password', clientAddress())).status).toBe(400);
  });

  test('one address trying many accounts (spraying) is throttled by address', async () => {
    const ip = clientAddress();
    const statuses: number[] = [];
    for (let i = 0; i < 22; i++) statuses.push((await attempt(`nobody.${i}.${Date.now()}@example.com`, 'Winter2026!', ip)).status);
    expect(statuses.slice(0, 20).every((s) => s === 400)).toBe(true);
    expect(statuses.slice(20)).toContain(429);
    // Another address is not affected.
    expect((await attempt(`nobody.else.${Date.now()}@example.com`, 'Winter2026!', clientAddress())).status).toBe(400);
  });

  test('registration and reset requests are limited per client address and per mailbox', async () => {
    const ip = clientAddress();
    const registrations: number[] = [];
    for (let i = 0; i < 7; i++) {
      registrations.push((await postForm(`${appUrl}/register`, { name: 'Flood', email: `flood.${i}.${Date.now()}@example.com`, password: 'long enough password' }, { ip })).status);
    }
    expect(registrations.slice(0, 5)).toEqual([200, 200, 200, 200, 200]);
    expect(registrations.slice(5)).toContain(429);
    const mailbox = `target.${Date.now()}@example.com`;
    const resets: number[] = [];
    for (let i = 0; i < 5; i++) resets.push((await postForm(`${appUrl}/forgot-password`, { email: mailbox })).status);
    expect(resets.slice(0, 3)).toEqual([200, 200, 200]);
    expect(resets.slice(3)).toContain(429);
  });

  test('made-up verification links are throttled by address', async () => {
    const ip = clientAddress();
    const answers: string[] = [];
    for (let i = 0; i < 12; i++) {
      const res = await fetch(`${appUrl}/verify-email?token=eyJ4IjoxfQ.${'A'.repeat(43)}`, { headers: { 'x-forwarded-for': ip } });
      answers.push(await res.text());
    }
    expect(answers.every((a) => a.includes('This link does not work'))).toBe(true);
  });
});

describe('account enumeration', () => {
  const median = (times: number[]) => [...times].sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
  const timed = async (send: () => Promise<Response>) => {
    const started = performance.now();
    const res = await send();
    await res.text();
    return { status: res.status, ms: performance.now() - started };
  };

  test('registering an address that has an account answers exactly as a new one, and mails its owner instead', async () => {
    const account = await createAccount();
    const fresh = `fresh.${Date.now()}@example.com`;
    const pages: string[] = [];
    for (const email of [account.email, fresh]) {
      const res = await postForm(`${appUrl}/register`, { name: 'Someone', email, password: 'another long password' });
      expect(res.status).toBe(200);
      expect(res.headers.getSetCookie()).toEqual([]);
      // The page differs only by the address it echoes and its nonce.
      pages.push((await res.text()).replaceAll(email, 'EMAIL').replace(/nonce="[^"]+"/g, 'nonce'));
    }
    expect(pages[0]).toBe(pages[1]);
    await expect.poll(async () => (await mailsTo(account.email)).map((m) => m.subject), { timeout: 20_000 }).toContain('You already have a Berth account');
    await expect.poll(async () => (await mailsTo(fresh)).map((m) => m.subject), { timeout: 20_000 }).toContain('Confirm your email address');
    // Nothing about the existing account changed: its password still works.
    expect(await signIn(account)).toContain('__Host-berth_session=');
  });

  test('the same answer, in similar time, whether an address has an account: sign-in, registration, reset', async () => {
    const unknown = () => `unknown.${Math.random().toString(36).slice(2)}@example.com`;
    const forms: { name: string; path: string; fields: (email: string) => Record<string, string> }[] = [
      { name: 'sign-in', path: '/login', fields: (email) => ({ email, password: 'not the password' }) },
      { name: 'registration', path: '/register', fields: (email) => ({ name: 'X', email, password: 'long enough password' }) },
      { name: 'reset', path: '/forgot-password', fields: (email) => ({ email }) },
    ];
    for (const form of forms) {
      // Fresh accounts and client addresses per form, each used twice: under every free allowance,
      // so what is measured is the work, not the throttle.
      const accounts = [await createAccount(), await createAccount(), await createAccount(), await createAccount()];
      // Let the mails those accounts caused go out first: they are not what is measured.
      await sleep(1_500);
      const known: { status: number; ms: number }[] = [];
      const other: { status: number; ms: number }[] = [];
      for (let i = 0; i < 8; i++) {
        const withAccount = () => timed(() => postForm(`${appUrl}${form.path}`, form.fields(accounts[i % 4]!.email)));
        const without = () => timed(() => postForm(`${appUrl}${form.path}`, form.fields(unknown())));
        // Alternating which goes first, so whatever else the machine does falls on both alike.
        if (i % 2 === 0) known.push(await withAccount()); else other.push(await without());
        // The mail a request queued goes out 250 ms after its answer; let it, so it falls on no measured answer.
        await sleep(600);
        if (i % 2 === 0) other.push(await without()); else known.push(await withAccount());
        await sleep(600);
      }
      expect(new Set([...known, ...other].map((r) => r.status)), form.name).toEqual(new Set([form.name === 'sign-in' ? 400 : 200]));
      const [a, b] = [median(known.map((r) => r.ms)), median(other.map((r) => r.ms))];
      // Within 40 ms or half the faster one: what a mail sent in the request, or a skipped hash, would exceed.
      expect(Math.abs(a - b), `${form.name}: ${a.toFixed(1)} ms with an account, ${b.toFixed(1)} ms without`).toBeLessThan(Math.max(40, 0.5 * Math.min(a, b)));
    }
  });
});

describe('redirects after sign-in', () => {
  const variants = ['//evil.example', '/\\evil.example', '/%09/evil.example', '/%2F/evil.example', '/%5Cevil.example', '/%5C%5Cevil.example', '/\t/evil.example', '/\n/evil.example', '/.//evil.example',
    '/%2e//evil.example', 'https://evil.example', 'javascript:alert(1)', '\\\\evil.example', '/\\/evil.example', ' //evil.example', '/ /evil.example'];

  test('`next` goes only to a path on this site, in the form and in the signed-in redirect', async () => {
    const account = await createAccount();
    for (const next of variants) {
      const res = await postForm(`${appUrl}/login`, { email: account.email, password: account.password, next });
      expect(res.status, JSON.stringify(next)).toBe(302);
      expect(res.headers.get('location'), JSON.stringify(next)).toBe('/dashboard');
      const signedIn = await visit(`/login?next=${encodeURIComponent(next)}`, account.cookie);
      expect(signedIn.location, JSON.stringify(next)).toBe('/dashboard');
    }
    const fine = await postForm(`${appUrl}/login`, { email: account.email, password: account.password, next: '/settings?tab=key#model' });
    expect(fine.headers.get('location')).toBe('/settings?tab=key#model');
  });
});

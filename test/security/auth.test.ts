import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { randomBytes, scryptSync } from 'node:crypto';
import { berth, clientAddress, createAccount, mailedLink, mailsTo, postForm, query, signIn, startExtraWeb, visit, type Account } from './support.ts';

const { appUrl } = berth;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Clock ticks per second, the unit of /proc/<pid>/stat's CPU times. */
const clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

/** A sign-in attempt: its status and Retry-After (seconds) when throttled. */
async function attempt(email: string, password: string, ip: string, url = appUrl): Promise<{ status: number; retryAfter: number | null }> {
  const res = await postForm(`${url}/login`, { email, password }, { ip });
  await res.text();
  const retry = res.headers.get('retry-after');
  return { status: res.status, retryAfter: retry === null ? null : Number(retry) };
}

describe('throttling', () => {
  let second: Awaited<ReturnType<typeof startExtraWeb>>;
  beforeAll(async () => {
    // Another web process of the same Berth, as behind a load balancer: the counts are the database's.
    second = await startExtraWeb({}, 'web-second');
  });
  afterAll(async () => {
    await second?.process.stop();
  });

  test('wrong passwords for one account meet growing delays (1, 2, 4, 8 s after five free tries), from any address, on any web process', async () => {
    const account = await createAccount();
    // Attempts alternate between the two web processes.
    const webs = [appUrl, second.url];
    let turn = 0;
    const next = () => webs[turn++ % webs.length]!;
    const curve: { status: number; retryAfter: number | null }[] = [];
    for (let i = 0; i < 5; i++) curve.push(await attempt(account.email, 'wrong password', clientAddress(), next()));
    expect(curve.map((c) => c.status)).toEqual([400, 400, 400, 400, 400]);
    // Each further failure starts a block twice as long as the one before; while it lasts, even the
    // right password from a new address is refused, and not counted.
    const delays: number[] = [];
    for (let step = 0; step < 4; step++) {
      const failed = await attempt(account.email, 'wrong password', clientAddress(), next());
      expect(failed.status).toBe(400);
      const refused = await attempt(account.email, account.password, clientAddress(), next());
      expect(refused.status).toBe(429);
      delays.push(refused.retryAfter!);
      await sleep(refused.retryAfter! * 1000 + 200);
    }
    expect(delays).toEqual([1, 2, 4, 8]);
    // The right password after the wait gets in, and clears the account's count.
    expect(await signIn(account, appUrl, clientAddress())).toContain('__Host-berth_session=');
    expect((await attempt(account.email, 'wrong password', clientAddress())).status).toBe(400);
  });

  test('a flood of sign-ins is answered "busy" past the hashing queue, and the process keeps answering meanwhile', async () => {
    const rss = async () => Number(/VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${berth.webPid}/status`, 'utf8'))![1]) / 1024;
    const before = await rss();
    let peak = before;
    const sampling = setInterval(() => { void rss().then((mb) => { peak = Math.max(peak, mb); }, () => {}); }, 50);
    // 200 sign-ins at once, each from its own address for an address with no account.
    const flood = Promise.all(Array.from({ length: 200 }, (_, i) => attempt(`flood.${i}.${Date.now()}@example.com`, 'Winter2026!', clientAddress())));
    // Meanwhile the process answers others: the hashing runs off the request thread.
    const health: number[] = [];
    for (let i = 0; i < 5; i++) {
      const started = performance.now();
      expect((await fetch(`${appUrl}/healthz`)).status).toBe(200);
      health.push(performance.now() - started);
      await sleep(100);
    }
    const answers = await flood;
    clearInterval(sampling);
    const count = (status: number) => answers.filter((a) => a.status === status).length;
    expect(count(400) + count(503), JSON.stringify(answers.map((a) => a.status))).toBe(200);
    // Past 2 hashing and 64 waiting, a sign-in is told to come back in a few seconds, not queued.
    expect(count(503)).toBeGreaterThan(0);
    expect(answers.filter((a) => a.status === 503).every((a) => a.retryAfter === 5)).toBe(true);
    // The main thread still renders every answer (on this shared, loaded machine that takes time), but
    // it is never blocked on a hash: the process answers throughout.
    expect(Math.max(...health), `health answers took ${health.map((h) => h.toFixed(0)).join(', ')} ms`).toBeLessThan(5_000);
    expect(peak - before, `web RSS ${before.toFixed(0)} → peak ${peak.toFixed(0)} MB`).toBeLessThan(150);
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

  test('made-up verification links are throttled by address: past ten, even a real link from there waits', async () => {
    const email = `unconfirmed.${randomBytes(4).toString('hex')}@example.com`;
    expect((await postForm(`${appUrl}/register`, { name: 'Guesser', email, password: 'long enough password' })).status).toBe(200);
    const link = new URL(await mailedLink(email, 'Confirm your email address', '/verify-email'));
    const open = async (path: string, ip: string) => (await (await fetch(`${appUrl}${path}`, { headers: { 'x-forwarded-for': ip } })).text());
    const ip = clientAddress();
    // Ten free guesses; the eleventh, twelfth and thirteenth start blocks of 1, 2 and 4 s.
    for (let i = 0; i < 13; i++) {
      expect(await open(`/verify-email?token=eyJ4IjoxfQ.${randomBytes(32).toString('base64url')}`, ip)).toContain('This link does not work');
      if (i === 10 || i === 11) await sleep(2 ** (i - 10) * 1000 + 100);
    }
    expect(await open(`/verify-email?token=eyJ4IjoxfQ.${randomBytes(32).toString('base64url')}`, ip)).toContain('This link does not work');
    // Blocked for 4 s: the real link from that address confirms nothing.
    expect(await open(link.pathname + link.search, ip)).toContain('This link does not work');
    expect((await query<{ verified: Date | null }>('select email_verified_at as verified from users where email = $1', [email]))[0]!.verified).toBeNull();
    // From another address it works.
    expect(await open(link.pathname + link.search, clientAddress())).toContain('Email address confirmed');
  });

  test('an address that is not ours to trust cannot dodge the throttle by naming another client', async () => {
    // This process trusts X-Forwarded-For only from a proxy at 10.9.8.7, which the probes are not.
    const web = await startExtraWeb({ TRUST_PROXY: '10.9.8.7' }, 'web-proxy');
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 22; i++) {
        statuses.push((await attempt(`sprayed.${i}.${Date.now()}@example.com`, 'Winter2026!', clientAddress(), web.url)).status);
      }
      // Each attempt claims a new client address; all are counted as this one peer's.
      expect(statuses.slice(0, 20).every((s) => s === 400)).toBe(true);
      expect(statuses.slice(20)).toContain(429);
    } finally {
      await web.process.stop();
    }
  });
});

describe('account enumeration', () => {
  const quantile = (values: number[], q: number) => [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) * q)]!;
  const sum = (values: number[]) => values.reduce((n, v) => n + v, 0);
  /** CPU time the web process has used so far (all its threads, the hashing pool's included), in ms. */
  const cpuMs = async () => {
    const fields = (await readFile(`/proc/${berth.webPid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) * (1000 / clockTicks);
  };
  /** An answer's wall time as the client sees it, and the web process's CPU time spent meanwhile. */
  const timed = async (send: () => Promise<Response>) => {
    const [started, cpuBefore] = [performance.now(), await cpuMs()];
    const res = await send();
    await res.text();
    return { status: res.status, ms: performance.now() - started, cpu: (await cpuMs()) - cpuBefore };
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
    const pairs = 16;
    for (const form of forms) {
      // Fresh accounts and client addresses per form, each used at most twice: under every free
      // allowance, so what is measured is the work, not the throttle.
      const accounts: Account[] = [];
      for (let i = 0; i < pairs / 2; i++) accounts.push(await createAccount());
      // Let the mails those accounts caused go out first: they are not what is measured.
      await sleep(1_500);
      const known: { status: number; ms: number; cpu: number }[] = [];
      const other: { status: number; ms: number; cpu: number }[] = [];
      for (let i = 0; i < pairs; i++) {
        const withAccount = () => timed(() => postForm(`${appUrl}${form.path}`, form.fields(accounts[i % accounts.length]!.email)));
        const without = () => timed(() => postForm(`${appUrl}${form.path}`, form.fields(unknown())));
        // Alternating which goes first, so whatever else the machine does falls on both alike.
        if (i % 2 === 0) known.push(await withAccount()); else other.push(await without());
        // The mail a request queued goes out 250 ms after its answer; let it, so it falls on no measured answer.
        await sleep(400);
        if (i % 2 === 0) other.push(await without()); else known.push(await withAccount());
        await sleep(400);
      }
      expect(new Set([...known, ...other].map((r) => r.status)), form.name).toEqual(new Set([form.name === 'sign-in' ? 400 : 200]));
      // Wall time, as a prober sees it: the lower quartile of each kind is what the work itself costs
      // (other processes' load only ever adds time). Allowed: 40 ms, or half the quicker one, or the
      // spread the machine's load puts on answers of one kind (the steadier kind's), whichever is more.
      const [a, b] = [quantile(known.map((r) => r.ms), 0.25), quantile(other.map((r) => r.ms), 0.25)];
      const iqr = (rs: { ms: number }[]) => quantile(rs.map((r) => r.ms), 0.75) - quantile(rs.map((r) => r.ms), 0.25);
      const spread = Math.min(iqr(known), iqr(other));
      expect(Math.abs(a - b), `${form.name}: ${a.toFixed(0)} ms with an account, ${b.toFixed(0)} ms without (lower quartiles of ${pairs}; spread ${spread.toFixed(0)} ms)`)
        .toBeLessThan(Math.max(40, 0.5 * Math.min(a, b), spread));
      // The web process's CPU time for each kind: the same work, whatever the load. A skipped or extra
      // password hash (~20 ms each) or a mail rendered during the request would show here.
      const [ka, kb] = [sum(known.map((r) => r.cpu)), sum(other.map((r) => r.cpu))];
      expect(Math.abs(ka - kb), `${form.name}: ${ka.toFixed(0)} ms of CPU with an account, ${kb.toFixed(0)} ms without (${pairs} answers each)`)
        .toBeLessThan(40 + 0.25 * Math.max(ka, kb));
    }
  });
});

describe('passwords', () => {
  test('a hash from before argon2id (scrypt) still signs in, and is replaced by argon2id at OWASP\'s settings then', async () => {
    const account = await createAccount();
    const salt = randomBytes(16);
    const key = scryptSync(account.password.normalize('NFKC'), salt, 32, { N: 1 << 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 });
    const legacy = ['scrypt', 1 << 15, 8, 1, salt.toString('base64url'), key.toString('base64url')].join('$');
    await query('update users set password_hash = $1 where email = $2', [legacy, account.email]);
    const hashOf = async () => (await query<{ hash: string }>('select password_hash as hash from users where email = $1', [account.email]))[0]!.hash;
    expect(await signIn(account)).toContain('__Host-berth_session=');
    expect(await hashOf()).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    // The new hash opens the account; a wrong password still does not.
    expect(await signIn(account)).toContain('__Host-berth_session=');
    expect((await attempt(account.email, 'not it', clientAddress())).status).toBe(400);
  });
});

describe('an address not yet confirmed', () => {
  test('may sign in and look around, but not pay: no checkout starts until the address is confirmed', async () => {
    const account = { name: 'Unconfirmed', email: `later.${randomBytes(4).toString('hex')}@example.com`, password: 'long enough password' };
    expect((await postForm(`${appUrl}/register`, account)).status).toBe(200);
    const cookie = await signIn(account);
    for (const path of ['/dashboard', '/billing', '/settings']) expect((await visit(path, cookie)).status, path).toBe(200);
    const checkout = async () => {
      const requestId = /name="requestId" value="([\w-]+)"/.exec((await visit('/billing', cookie)).body)![1]!;
      return postForm(`${appUrl}/billing`, { intent: 'checkout', plan: 'starter', requestId }, { cookie });
    };
    const whereTo = (res: Response) => res.headers.get('location') ?? res.headers.get('x-remix-redirect');
    const refused = await checkout();
    expect(refused.status).toBe(200);
    expect(whereTo(refused)).toBeNull();
    expect(await refused.text()).toContain('Confirm your email address first');
    // Once confirmed, the same form leads to the checkout.
    await fetch(new URL(new URL(await mailedLink(account.email, 'Confirm your email address', '/verify-email')).search, `${appUrl}/verify-email`));
    expect(whereTo(await checkout())).toMatch(/\/local-billing\/checkout\//);
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

import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import net from 'node:net';
import { WebSocket } from 'ws';
import { launchBrowser } from '../support/browser.ts';
import { berth, createAccount, postForm, productionEnv, startExtraWeb } from './support.ts';

const { appUrl } = berth;

describe('cross-site requests', () => {
  test('a form another site posts is refused before it does anything, whatever it carries', async () => {
    const variants: { name: string; origin: string | null; headers?: Record<string, string> }[] = [
      { name: 'another origin', origin: 'http://evil.example' },
      { name: 'the same host on another port', origin: 'http://localhost:1' },
      { name: 'an opaque origin', origin: 'null' },
      { name: 'no Origin, but a browser saying cross-site', origin: null, headers: { 'sec-fetch-site': 'cross-site' } },
      { name: 'no Origin, but a browser saying same-site', origin: null, headers: { 'sec-fetch-site': 'same-site' } },
    ];
    for (const path of ['/logout', '/login', '/register', '/forgot-password', '/settings', '/dashboard', '/billing']) {
      for (const v of variants) {
        const res = await postForm(`${appUrl}${path}`, { email: 'someone@example.com', password: 'whatever it is' }, { origin: v.origin, headers: v.headers });
        expect(res.status, `${path}: ${v.name}`).toBe(403);
        expect(await res.text()).toBe('This form must be sent from Berth’s own pages.');
      }
    }
  });

  test('the app\'s own pages may post (the browser says same-origin, or sends its Origin)', async () => {
    const sameOrigin = await postForm(`${appUrl}/logout`, {}, { headers: { 'sec-fetch-site': 'same-origin' } });
    expect(sameOrigin.status).toBe(302);
    expect(sameOrigin.headers.get('location')).toBe('/');
  });

  test('in a real browser with scripts off, the app\'s plain forms still work: sign in, then sign out', async () => {
    const account = await createAccount();
    const browser = await launchBrowser();
    try {
      // No script: every form is the browser's own POST, with whatever Origin its referrer policy gives.
      const page = await (await browser.newContext({ javaScriptEnabled: false })).newPage();
      await page.goto(`${appUrl}/login`);
      await page.getByLabel('Email').fill(account.email);
      await page.getByLabel('Password').fill(account.password);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.waitForURL('**/dashboard');
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.waitForURL(`${appUrl}/`);
      expect((await page.context().cookies()).filter((c) => c.name.startsWith('__Host-'))).toEqual([]);
    } finally {
      await browser.close();
    }
  });

  test('Stripe\'s webhook needs no Origin: it is signed instead', async () => {
    const res = await fetch(`${appUrl}/webhooks/stripe`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(res.status).toBe(400);
  });

  test('a socket opened by another site, or by no page at all, is refused', async () => {
    for (const origin of ['http://evil.example', 'null', undefined]) {
      const status = await new Promise<number>((resolve, reject) => {
        const ws = new WebSocket(`${appUrl.replace('http', 'ws')}/ws/chat`, { headers: origin ? { origin } : {} });
        ws.once('unexpected-response', (_req, res) => { resolve(res.statusCode ?? 0); ws.terminate(); });
        ws.once('open', () => { resolve(101); ws.terminate(); });
        ws.once('error', reject);
      });
      expect(status, String(origin)).toBe(403);
    }
  });
});

describe('request sizes', () => {
  test('an oversized form is refused with 413 before it is read, on every page', async () => {
    const big = 'x'.repeat(200 * 1024);
    for (const path of ['/login', '/register', '/forgot-password', '/reset-password', '/settings', '/no-such-page']) {
      const started = Date.now();
      const res = await postForm(`${appUrl}${path}`, { email: 'a@example.com', password: big });
      expect(res.status, path).toBe(413);
      expect(await res.text()).toBe('That request is too large.');
      expect(Date.now() - started).toBeLessThan(5_000);
    }
  });

  test('a body without a length (chunked) is refused rather than read without end', async () => {
    const { port } = new URL(appUrl);
    // A raw socket: the request's body never ends, and the answer comes all the same.
    const statusLine = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(Number(port), '127.0.0.1', () => {
        socket.write(`POST /login HTTP/1.1\r\nHost: localhost:${port}\r\nOrigin: ${appUrl}\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n`);
        socket.write(`10000\r\n${'x'.repeat(0x10000)}\r\n`);
      });
      socket.setTimeout(10_000, () => { socket.destroy(); reject(new Error('no answer in 10 s')); });
      socket.once('data', (d: Buffer) => { resolve(d.toString('latin1').split('\r\n')[0]!); socket.destroy(); });
      socket.once('error', reject);
    });
    expect(statusLine).toBe('HTTP/1.1 411 Length Required');
  });

  test('the webhook takes at most 1 MB, and the local checkout\'s forms their own small limit', async () => {
    const webhook = await fetch(`${appUrl}/webhooks/stripe`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: 'x'.repeat(2 * 1024 * 1024) });
    expect(webhook.status).toBe(413);
    expect(await webhook.text()).toBe('That request is too large.');
    const local = await postForm(`${appUrl}/local-billing/dev/someone/renew`, { filler: 'x'.repeat(200 * 1024) });
    expect(local.status).toBe(413);
  });

  test('a socket message past the limit closes the socket (1009), it is not buffered', async () => {
    const code = await new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(`${appUrl.replace('http', 'ws')}/ws/chat`, { headers: { origin: appUrl } });
      // No session: the upgrade is refused before any message, which is also a bound.
      ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.once('open', () => ws.send('x'.repeat(1024 * 1024)));
      ws.once('close', (c) => resolve(c));
      ws.once('error', reject);
    });
    expect(code).toBe(401);
  });
});

describe('outside local mode', () => {
  let web: Awaited<ReturnType<typeof startExtraWeb>>;
  let broken: Awaited<ReturnType<typeof startExtraWeb>>;
  beforeAll(async () => {
    web = await startExtraWeb(productionEnv(), 'web-prod');
    // Its database cannot be reached: what does /readyz tell an anonymous caller?
    broken = await startExtraWeb({ ...productionEnv(), DATABASE_URL: 'postgres://berth_app:wrong@127.0.0.1:9/berth' }, 'web-nodb');
  });
  afterAll(async () => {
    await web?.process.stop();
    await broken?.process.stop();
  });

  test('the dev endpoints do not exist: mail preview, local checkout, dev billing triggers', async () => {
    for (const path of ['/dev/mail', '/dev/mail/welcome', '/local-billing/dev', '/local-billing/checkout/cs_local_x', '/local-billing/portal/x']) {
      const res = await fetch(`${web.url}${path}`);
      expect(res.status, path).toBe(404);
      expect(await res.text()).not.toMatch(/local billing|mail preview/i);
    }
    // No such route: the web app answers it as it answers any unknown address, never with events.
    const trigger = await postForm(`${web.url}/local-billing/dev/x/renew`, {}, { origin: web.origin });
    expect([400, 404, 405]).toContain(trigger.status);
    expect(await trigger.text()).not.toMatch(/events|local billing/i);
  });

  test('/readyz names what fails, never why', async () => {
    const ok = await fetch(`${web.url}/readyz`);
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ status: 'ok', checks: { database: 'ok', temporal: 'ok' } });
    const res = await fetch(`${broken.url}/readyz`);
    expect(res.status).toBe(503);
    const text = await res.text();
    expect(JSON.parse(text)).toEqual({ status: 'unavailable', checks: { database: 'failing', temporal: 'ok' } });
    expect(text).not.toMatch(/ECONNREFUSED|127\.0\.0\.1|berth_app|password|:9\b/);
  });

  test('an unknown page and a failing one say nothing internal', async () => {
    const res = await fetch(`${web.url}/no-such-page`);
    expect(res.status).toBe(404);
    const html = await res.text();
    expect(html).not.toMatch(/at \w+ \(|node_modules|\.tsx?:\d+/);
    const failing = await fetch(`${broken.url}/dashboard`, { headers: { cookie: '__Host-berth_session=abc' } });
    const body = await failing.text();
    expect(failing.status).toBe(500);
    expect(body).not.toMatch(/ECONNREFUSED|127\.0\.0\.1|berth_app|stack|node_modules/);
  });
});

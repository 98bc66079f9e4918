import { expect, inject, test } from 'vitest';

const { appUrl } = inject('berth');

/** The nonce named in a CSP header's script-src. */
function nonceOf(csp: string): string | undefined {
  return /script-src [^;]*'nonce-([A-Za-z0-9+/=]+)'/.exec(csp)?.[1];
}

test('every page carries the security headers, with a fresh CSP nonce that every script of the page has', async () => {
  const nonces = new Set<string>();
  for (const path of ['/', '/login', '/register', '/no-such-page']) {
    const res = await fetch(`${appUrl}${path}`);
    const html = await res.text();
    const csp = res.headers.get('content-security-policy') ?? '';
    const directives = Object.fromEntries(csp.split(';').map((d) => d.trim().split(/\s+/)).map(([name, ...values]) => [name, values]));
    expect(directives['default-src'], path).toEqual(["'self'"]);
    expect(directives['connect-src'], path).toEqual(["'self'"]);
    expect(directives['frame-ancestors'], path).toEqual(["'none'"]);
    expect(directives['object-src'], path).toEqual(["'none'"]);
    expect(directives['base-uri'], path).toEqual(["'none'"]);
    expect(directives['script-src'], path).not.toContain("'unsafe-inline'");
    const nonce = nonceOf(csp);
    expect(nonce, path).toMatch(/^[A-Za-z0-9+/]{22}==$/);
    nonces.add(nonce!);
    const scripts = [...html.matchAll(/<script\b[^>]*>/g)].map((m) => m[0]);
    expect(scripts.length, path).toBeGreaterThan(0);
    for (const tag of scripts) expect(tag, path).toContain(`nonce="${nonce}"`);
    expect(res.headers.get('strict-transport-security'), path).toMatch(/max-age=(\d+); includeSubDomains/);
    expect(Number(/max-age=(\d+)/.exec(res.headers.get('strict-transport-security')!)![1])).toBeGreaterThanOrEqual(31_536_000);
    expect(res.headers.get('x-content-type-options'), path).toBe('nosniff');
    expect(res.headers.get('referrer-policy'), path).toBe('same-origin');
    expect(res.headers.get('x-frame-options'), path).toBe('DENY');
    expect(res.headers.get('x-powered-by'), path).toBeNull();
    expect(res.headers.get('cache-control'), path).toBe('no-store');
  }
  expect(nonces.size).toBe(4);
});

test('pages whose address carries a token are never stored, and never leak it as a referrer', async () => {
  for (const path of ['/reset-password?token=abc.def', '/verify-email?token=abc.def']) {
    const res = await fetch(`${appUrl}${path}`);
    await res.body?.cancel();
    expect(res.headers.get('cache-control'), path).toBe('no-store');
    expect(res.headers.get('referrer-policy'), path).toBe('same-origin');
  }
});

test('the app\'s own assets are cacheable and carry nosniff', async () => {
  const html = await (await fetch(`${appUrl}/login`)).text();
  const asset = /src="(\/assets\/[^"]+\.js)"|href="(\/assets\/[^"]+\.js)"/.exec(html);
  expect(asset).not.toBeNull();
  const res = await fetch(`${appUrl}${asset![1] ?? asset![2]}`);
  await res.body?.cancel();
  expect(res.status).toBe(200);
  expect(res.headers.get('x-content-type-options')).toBe('nosniff');
  expect(res.headers.get('cache-control')).toContain('immutable');
});

test('in a real browser the pages run under that policy: no violation, and the app hydrates', async () => {
  const { launchBrowser } = await import('../support/browser.ts');
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage();
    const problems: string[] = [];
    page.on('console', (m) => { if (/Content.Security.Policy|Refused to/i.test(m.text())) problems.push(m.text()); });
    page.on('pageerror', (e) => problems.push(e.message));
    await page.goto(`${appUrl}/login`);
    // A marker on the window survives only a client-side navigation: React Router took over the link.
    await page.evaluate(() => { (window as unknown as { marker: number }).marker = 42; });
    await page.getByRole('link', { name: 'Create an account' }).click();
    await page.waitForURL('**/register');
    expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(42);
    expect(problems).toEqual([]);
  } finally {
    await browser.close();
  }
});

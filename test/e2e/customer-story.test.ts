import { afterAll, beforeAll, expect, inject, test } from 'vitest';
import type { Browser } from 'playwright-core';
import { WebSocket } from 'ws';
import pg from 'pg';
import { Client, Connection } from '@temporalio/client';
import { confirmationLink, launchBrowser, registerAccount, signIn } from '../support/browser.ts';

let browser: Browser;
beforeAll(async () => {
  browser = await launchBrowser();
});
afterAll(async () => {
  await browser?.close();
});

/** The HTTP status the app answers a WebSocket upgrade of `path` with (101: the socket opened). */
async function upgradeStatus(path: string, headers: { cookie?: string; origin: string }): Promise<number> {
  const ws = new WebSocket(`ws://localhost:3000${path}`, { headers });
  return new Promise((resolve, reject) => {
    ws.once('upgrade', (res) => { resolve(res.statusCode ?? 0); ws.terminate(); });
    ws.once('unexpected-response', (_req, res) => { resolve(res.statusCode ?? 0); ws.terminate(); });
    ws.once('error', reject);
  });
}

/** The first JSON message a live socket sends. */
async function firstMessage(path: string, headers: { cookie?: string; origin: string }): Promise<unknown> {
  const ws = new WebSocket(`ws://localhost:3000${path}`, { headers });
  return new Promise((resolve, reject) => {
    ws.once('message', (data) => { resolve(JSON.parse(String(data))); ws.terminate(); });
    ws.once('error', reject);
  });
}

/** The customer's workflow history as JSON, found by the account's email (the run command's database and Temporal). */
async function workflowHistoryOf(email: string): Promise<string> {
  const db = new pg.Client({ connectionString: 'postgres://berth@127.0.0.1:54329/berth' });
  await db.connect();
  const { rows } = await db.query<{ id: string }>('select id from users where email = $1', [email]).finally(() => db.end());
  const connection = await Connection.connect({ address: '127.0.0.1:7233' });
  try {
    const history = await new Client({ connection }).workflow.getHandle(`customer-${rows[0]!.id}`).fetchHistory();
    // Payloads as text: their `data` comes as base64 in the history's JSON form.
    return JSON.stringify(history, (key, value: unknown) => (key === 'data' && typeof value === 'string' ? Buffer.from(value, 'base64').toString('utf8') : value));
  } finally {
    await connection.close();
  }
}

/** Mails the local mail catcher holds for an address (maildev's REST API). */
async function mailSubjects(to: string): Promise<string[]> {
  const res = await fetch('http://127.0.0.1:1080/api/email');
  const mails = (await res.json()) as { subject: string; to: { address: string }[] }[];
  return mails.filter((m) => m.to.some((t) => t.address === to)).map((m) => m.subject);
}

test('a new customer signs up, pays on the local checkout, and watches their server come up', async () => {
  const appUrl = inject('appUrl');
  const email = `ada.${Date.now()}@example.com`;
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(err.message));

  await page.goto(`${appUrl}/register`);
  await page.getByLabel('Name').fill('Ada <b>Lovelace</b>');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill('too short');
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page.getByText('Use at least 10 characters.').textContent()).resolves.toBeTruthy();
  await page.getByLabel('Password').fill('analytical engine 1843');
  await page.getByRole('button', { name: 'Create account' }).click();
  // No payment before the address is confirmed: the mailed link, then the sign-in page.
  await page.getByRole('heading', { name: 'Check your email' }).waitFor();
  await page.goto(await confirmationLink('http://127.0.0.1:1080', email));
  await signIn(page, appUrl, { email, password: 'analytical engine 1843' });
  // The name is shown as typed, never as markup (the header follows once the session is read).
  await page.locator('header').getByText('Ada <b>Lovelace</b>', { exact: true }).waitFor();
  await page.getByRole('link', { name: 'See the plans' }).click();

  await page.waitForURL('**/billing');
  await page.getByRole('button', { name: 'Subscribe to Starter' }).click();
  await page.waitForURL('**/local-billing/checkout/**');
  await page.getByTestId('local-pay').click();
  await page.waitForURL('**/billing?notice=success');
  expect(await page.getByRole('status').textContent()).toContain('payment went through');

  await page.goto(`${appUrl}/dashboard`);
  // The dashboard refreshes itself while the server is set up: a real sshd in the local cloud.
  await page.getByTestId('stage').filter({ hasText: 'Active' }).waitFor({ timeout: 90_000 });
  const facts = await page.locator('.facts').textContent();
  expect(facts).toContain('starter');
  expect(facts).toMatch(/cx23 in nbg1 · running/);
  expect(facts).toMatch(/127\.0\.\d+\.\d+/);
  await page.screenshot({ path: 'test-results/dashboard-active.png', fullPage: true });

  // A backup on demand: tar over SSH from the server, encrypted into MinIO, re-read and verified.
  // The action's answer is the status line, whatever it says: a refusal shows its own words here.
  await page.getByRole('button', { name: 'Back up now' }).click();
  const answer = page.locator('p[role="status"].notice, p[role="status"].error');
  // A first attempt takes about a second; 25 s is less than the activity's first retry delay (30 s),
  // so a backup that only succeeds on a retry fails here.
  await answer.waitFor({ timeout: 25_000 });
  expect(await answer.textContent()).toMatch(/^Backup done and verified \(\d+\.\d MB\)\.$/);
  expect(await page.locator('table').first().textContent()).toContain('manual');

  // Settings: a model, a time zone and the model's API key. Bad input is refused and changes nothing.
  await page.getByRole('link', { name: 'Settings' }).click();
  await page.waitForURL('**/settings');
  await page.getByLabel('Model', { exact: true }).fill('not a model');
  await page.getByRole('button', { name: 'Save settings' }).click();
  await expect(page.locator('#model-error').textContent()).resolves.toContain('Write the model as provider/model');
  expect(await page.locator('.facts').textContent()).toContain('the assistant’s default');
  const apiKey = `sk-ant-e2e-${crypto.randomUUID()}`;
  await page.getByLabel('Model', { exact: true }).fill('anthropic/claude-sonnet-4-5');
  await page.getByLabel('Time zone').selectOption('Europe/Berlin');
  await page.getByLabel('Model API key').fill(apiKey);
  await page.getByRole('button', { name: 'Save settings' }).click();
  await expect(page.getByRole('status').textContent()).resolves.toContain('Saved.');
  await page.getByTestId('settings-state').filter({ hasText: 'Your server has these settings.' }).waitFor({ timeout: 60_000 });
  const facts2 = await page.locator('.facts').textContent();
  expect(facts2).toContain('anthropic/claude-sonnet-4-5');
  expect(facts2).toContain('Europe/Berlin');
  expect(facts2).toContain('saved (encrypted');
  expect(await page.content()).not.toContain(apiKey);
  // The key is in the database only encrypted, and never in the workflow's history.
  const history = await workflowHistoryOf(email);
  expect(history).toContain('claude-sonnet-4-5');
  expect(history).not.toContain(apiKey);

  // A terminal into their own server: a real shell over SSH, through the app's WebSocket. It shows the
  // settings arrived: the key in the assistant's environment file, the model in its config.
  await page.getByRole('link', { name: 'Dashboard' }).click();
  await page.getByRole('link', { name: 'Open a terminal' }).click();
  await page.waitForURL('**/terminal');
  await page.getByTestId('terminal-status').filter({ hasText: 'Connected' }).waitFor({ timeout: 30_000 });
  await page.keyboard.type('echo "berth-$((6 * 7))" && whoami\n');
  await expect.poll(() => page.locator('.xterm-rows').textContent(), { timeout: 15_000 }).toMatch(/berth-42\s*berth/);
  await page.keyboard.type(`echo "keys=$(grep -c '^ANTHROPIC_API_KEY=${apiKey}$' ~/.openclaw/.env) models=$(grep -c claude-sonnet-4-5 ~/.openclaw/openclaw.json)"\n`);
  await expect.poll(() => page.locator('.xterm-rows').textContent(), { timeout: 15_000 }).toContain('keys=1 models=1');
  await page.screenshot({ path: 'test-results/terminal.png', fullPage: true });

  // A chat with their assistant, through an SSH tunnel to its gateway (the local cloud's stand-in).
  await page.getByRole('link', { name: 'Chat' }).click();
  await page.waitForURL('**/chat');
  await page.getByLabel('Message').fill('What is on my calendar tomorrow?');
  await page.getByRole('button', { name: 'Send' }).click();
  await expect.poll(() => page.getByTestId('chat-log').textContent(), { timeout: 30_000 })
    .toContain('stand-in assistant heard: What is on my calendar tomorrow?');
  // The conversation survives a reload of the tab.
  await page.reload();
  await expect.poll(() => page.getByTestId('chat-log').textContent(), { timeout: 10_000, message: `page errors: ${errors.join('; ')}` })
    .toContain('stand-in assistant heard: What is on my calendar tomorrow?');
  await page.screenshot({ path: 'test-results/chat.png', fullPage: true });

  // Only the app's own pages may open these sockets with the customer's cookie, and only signed in.
  const cookie = (await page.context().cookies()).map((c) => `${c.name}=${c.value}`).join('; ');
  expect(await upgradeStatus('/ws/terminal', { cookie, origin: appUrl })).toBe(101);
  expect(await upgradeStatus('/ws/terminal', { cookie, origin: 'http://evil.example' })).toBe(403);
  expect(await upgradeStatus('/ws/chat', { origin: appUrl })).toBe(401);
  expect(await upgradeStatus('/ws/elsewhere', { cookie, origin: appUrl })).toBe(404);

  await expect.poll(() => mailSubjects(email), { timeout: 30_000 }).toEqual(
    expect.arrayContaining(['Welcome to Berth', 'Your Berth server is ready']));
  expect(errors).toEqual([]);
});

test('a customer without a server is told so on the terminal and chat pages, and by the socket itself', async () => {
  const appUrl = inject('appUrl');
  const page = await browser.newPage();
  await registerAccount(page, appUrl, { name: 'Grace Hopper', email: `grace.${Date.now()}@example.com`, password: 'nanoseconds of wire' });
  for (const path of ['/terminal', '/chat']) {
    await page.goto(`${appUrl}${path}`);
    expect(await page.getByRole('status').textContent()).toContain('You have no server yet.');
  }
  // The socket refuses as well, in words, rather than reaching someone else's server.
  const cookie = (await page.context().cookies()).map((c) => `${c.name}=${c.value}`).join('; ');
  const first = await firstMessage('/ws/terminal', { cookie, origin: appUrl });
  expect(first).toEqual({ type: 'error', message: 'You have no server yet.' });
});

test('pages that need an account send a visitor to sign in and back', async () => {
  const page = await browser.newPage();
  await page.goto(`${inject('appUrl')}/billing`);
  await page.waitForURL('**/login?next=%2Fbilling');
  expect(await page.locator('h1').textContent()).toBe('Sign in');
});

import { afterAll, beforeAll, expect, inject, test } from 'vitest';
import type { Browser } from 'playwright-core';
import { launchBrowser } from '../support/browser.ts';

let browser: Browser;
beforeAll(async () => {
  browser = await launchBrowser();
});
afterAll(async () => {
  await browser?.close();
});

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
  await page.waitForURL('**/dashboard');
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
  await answer.waitFor({ timeout: 90_000 });
  expect(await answer.textContent()).toMatch(/^Backup done and verified \(\d+\.\d MB\)\.$/);
  expect(await page.locator('table').first().textContent()).toContain('manual');

  await expect.poll(() => mailSubjects(email), { timeout: 30_000 }).toEqual(
    expect.arrayContaining(['Welcome to Berth', 'Your Berth server is ready']));
  expect(errors).toEqual([]);
});

test('pages that need an account send a visitor to sign in and back', async () => {
  const page = await browser.newPage();
  await page.goto(`${inject('appUrl')}/billing`);
  await page.waitForURL('**/login?next=%2Fbilling');
  expect(await page.locator('h1').textContent()).toBe('Sign in');
});

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

test('a visitor sees what Berth is, and the dashboard asks them to sign in', async () => {
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(err.message));
  await page.goto(inject('appUrl'));
  await expect(page.title()).resolves.toContain('Berth');
  expect(await page.locator('h1').first().textContent()).toContain('Your own AI assistant');
  await page.getByRole('link', { name: 'Dashboard' }).click();
  // Signed out, the dashboard asks to sign in first.
  await page.waitForURL('**/login?next=%2Fdashboard');
  expect(await page.locator('h1').textContent()).toBe('Sign in');
  expect(errors).toEqual([]);
});

test('an unknown page answers 404 with a readable page', async () => {
  const page = await browser.newPage();
  const res = await page.goto(`${inject('appUrl')}/no-such-page`);
  expect(res?.status()).toBe(404);
  expect(await page.locator('h1').textContent()).toContain('404');
});

test('the Temporal Web UI is served next to the app', async () => {
  const page = await browser.newPage();
  const res = await page.goto(inject('temporalUiUrl'));
  expect(res?.status()).toBe(200);
});

test('every mail template can be previewed with sample data', async () => {
  const page = await browser.newPage();
  await page.goto(`${inject('appUrl')}/dev/mail`);
  const links = await page.locator('table a:not([href$=".txt"])').allTextContents();
  expect(links).toEqual(expect.arrayContaining(['welcome', 'server-ready', 'subscription-ending', 'subscription-expired', 'payment-failed']));
  await page.getByRole('link', { name: 'server-ready', exact: true }).click();
  expect(await page.locator('body').textContent()).toContain('Your server is ready');
});

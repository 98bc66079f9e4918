import { afterAll, beforeAll, expect, inject, test } from 'vitest';
import type { Browser } from 'playwright-core';
import { launchBrowser, linkInMail as linkInMailAt, registerAccount } from '../support/browser.ts';

let browser: Browser;
beforeAll(async () => {
  browser = await launchBrowser();
});
afterAll(async () => {
  await browser?.close();
});

/** The first link to `path` in the newest mail to `to` with this subject (the run command's mail catcher). */
const linkInMail = (to: string, subject: string, path: string) => linkInMailAt('http://127.0.0.1:1080', to, subject, path);

test('a new account gets a confirmation mail whose link confirms the address', async () => {
  const appUrl = inject('appUrl');
  const email = `confirm.${Date.now()}@example.com`;
  const page = await browser.newPage();
  await registerAccount(page, appUrl, { name: 'Katherine Johnson', email, password: 'trajectories 1962' });
  let link: string | undefined;
  await expect.poll(async () => (link = await linkInMail(email, 'Confirm your email address', '/verify-email')), { timeout: 20_000 }).toBeTruthy();
  await page.goto(link!);
  expect(await page.locator('h1').textContent()).toBe('Email address confirmed');
  await page.goto(`${link!.slice(0, -3)}xyz`);
  expect(await page.locator('h1').textContent()).toBe('This link does not work');
});

test('a forgotten password is replaced through the mailed link, which then stops working', async () => {
  const appUrl = inject('appUrl');
  const email = `forgot.${Date.now()}@example.com`;
  const page = await browser.newPage();
  await registerAccount(page, appUrl, { name: 'Dorothy Vaughan', email, password: 'fortran is the future' });
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL(`${appUrl}/`);

  await page.goto(`${appUrl}/login`);
  await page.getByRole('link', { name: 'Forgot your password?' }).click();
  await page.getByRole('heading', { name: 'Reset your password' }).waitFor();
  await page.getByLabel('Email').fill(email.toUpperCase());
  await page.getByRole('button', { name: 'Send the link' }).click();
  expect(await page.getByRole('status').textContent()).toContain('If an account uses that address');
  let link: string | undefined;
  await expect.poll(async () => (link = await linkInMail(email, 'Reset your Berth password', '/reset-password')), { timeout: 20_000 }).toBeTruthy();

  await page.goto(link!);
  await page.getByLabel('New password').fill('a brand new password');
  await page.getByRole('button', { name: 'Save and sign in' }).click();
  await page.waitForURL('**/dashboard');

  // Used once: the same link no longer works.
  await page.goto(link!);
  await page.getByLabel('New password').fill('yet another password');
  await page.getByRole('button', { name: 'Save and sign in' }).click();
  expect(await page.getByRole('alert').textContent()).toContain('expired or was used already');

  // The old password no longer opens the account; the new one does.
  await page.getByRole('button', { name: 'Sign out' }).click().catch(() => {});
  const context = await browser.newContext();
  const fresh = await context.newPage();
  await fresh.goto(`${appUrl}/login`);
  await fresh.getByLabel('Email').fill(email);
  await fresh.getByLabel('Password').fill('fortran is the future');
  await fresh.getByRole('button', { name: 'Sign in' }).click();
  expect(await fresh.getByRole('alert').textContent()).toContain('do not match');
  await fresh.getByLabel('Password').fill('a brand new password');
  await fresh.getByRole('button', { name: 'Sign in' }).click();
  await fresh.waitForURL('**/dashboard');
  await context.close();
});

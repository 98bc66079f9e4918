import { chromium, type Browser, type Page } from 'playwright-core';

/** Debian's Chromium, headless, with the flags that keep it off the (closed) network. */
export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
}

/** The first link to `path` in the newest mail to `to` with this subject (maildev's REST API at `mailUrl`). */
export async function linkInMail(mailUrl: string, to: string, subject: string, path: string): Promise<string | undefined> {
  const mails = (await (await fetch(`${mailUrl}/api/email`)).json()) as { subject: string; text: string; to: { address: string }[] }[];
  const mail = mails.reverse().find((m) => m.subject === subject && m.to.some((t) => t.address.toLowerCase() === to.toLowerCase()));
  return mail?.text.match(new RegExp(`https?://\\S*${path}\\?token=[\\w.-]+`))?.[0];
}

/** Waits for the confirmation mail to `email` and returns its link. */
export async function confirmationLink(mailUrl: string, email: string, timeoutMs = 20_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const link = await linkInMail(mailUrl, email, 'Confirm your email address', '/verify-email');
    if (link) return link;
    if (Date.now() > deadline) throw new Error(`no confirmation mail to ${email} in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Signs in through the sign-in page and waits for the dashboard. */
export async function signIn(page: Page, appUrl: string, account: { email: string; password: string }): Promise<void> {
  await page.goto(`${appUrl}/login`);
  await page.getByLabel('Email').fill(account.email);
  await page.getByLabel('Password').fill(account.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL('**/dashboard');
}

/**
 * Creates an account as a person does: the registration page, the confirmation link from the mail,
 * then the sign-in page; waits for the dashboard it leads to.
 */
export async function registerAccount(page: Page, appUrl: string, account: { name: string; email: string; password: string }, mailUrl = 'http://127.0.0.1:1080'): Promise<void> {
  await page.goto(`${appUrl}/register`);
  await page.getByLabel('Name').fill(account.name);
  await page.getByLabel('Email').fill(account.email);
  await page.getByLabel('Password').fill(account.password);
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.getByRole('heading', { name: 'Check your email' }).waitFor();
  await page.goto(await confirmationLink(mailUrl, account.email));
  await page.getByRole('heading', { name: 'Email address confirmed' }).waitFor();
  await signIn(page, appUrl, account);
}

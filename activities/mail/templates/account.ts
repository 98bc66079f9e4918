/** Mails about the account itself: welcome, email verification, password reset, a second sign-up. */
import { z } from 'zod';
import { defineMail, httpUrl, personName } from '../define.ts';
import { button, greeting, layout, p } from '../layout.ts';

export const welcome = defineMail({
  schema: z.object({ name: personName }),
  subject: () => 'Welcome to Berth',
  component: (data, { appUrl, links }) =>
    layout({
      appUrl,
      preview: 'Your own server with a personal AI assistant, ready in minutes.',
      heading: 'Welcome to Berth',
      children: [
        greeting(data.name),
        p('Thanks for signing up. Berth runs your personal AI assistant, OpenClaw, on a cloud server of your own, and looks after it for you: setup, backups and restores.'),
        p('Choose a plan in your dashboard and we set up your server within a few minutes.'),
        button(links.dashboard, 'Open your dashboard'),
      ],
    }),
});

export const verifyEmail = defineMail({
  schema: z.object({
    name: personName,
    verifyUrl: httpUrl,
    expiresInHours: z.number().int().positive(),
  }),
  subject: () => 'Confirm your email address',
  component: (data, { appUrl }) =>
    layout({
      appUrl,
      preview: 'Confirm your email address to finish signing up.',
      heading: 'Confirm your email address',
      children: [
        greeting(data.name),
        p('Please confirm that this is your email address so we can reach you about your server and your subscription.'),
        button(data.verifyUrl, 'Confirm email address'),
        p('Or paste this link into your browser: ', data.verifyUrl),
        p(`The link works for ${data.expiresInHours} ${data.expiresInHours === 1 ? 'hour' : 'hours'}. If you did not create a Berth account, ignore this mail.`),
      ],
    }),
});

export const passwordReset = defineMail({
  schema: z.object({
    name: personName,
    resetUrl: httpUrl,
    expiresInMinutes: z.number().int().positive(),
  }),
  subject: () => 'Reset your Berth password',
  component: (data, { appUrl }) =>
    layout({
      appUrl,
      preview: 'A link to choose a new password.',
      heading: 'Reset your password',
      children: [
        greeting(data.name),
        p('Someone, hopefully you, asked to reset the password of your Berth account. Choose a new one here:'),
        button(data.resetUrl, 'Choose a new password'),
        p('Or paste this link into your browser: ', data.resetUrl),
        p(`The link works for ${data.expiresInMinutes} minutes and only once. If you did not ask for this, ignore this mail: your password stays as it is.`),
      ],
    }),
});

/** Someone signed up with an address that has an account: the page said "check your email" either way. */
export const accountExists = defineMail({
  schema: z.object({
    name: personName,
    signInUrl: httpUrl,
    resetUrl: httpUrl,
  }),
  subject: () => 'You already have a Berth account',
  component: (data, { appUrl }) =>
    layout({
      appUrl,
      preview: 'Someone tried to create a Berth account with this address.',
      heading: 'You already have an account',
      children: [
        greeting(data.name),
        p('Someone, hopefully you, tried to create a Berth account with this email address. It already has one, so nothing was changed.'),
        button(data.signInUrl, 'Sign in'),
        p('Forgot your password? Choose a new one here: ', data.resetUrl),
        p('If this was not you, ignore this mail: your account stays as it is.'),
      ],
    }),
});

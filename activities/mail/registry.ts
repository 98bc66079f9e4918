/**
 * Every mail Berth sends, by kind: its data schema, subject and body. Adding a kind here is the only
 * step; sending, previews and tests pick it up from this table.
 */
import type { z } from 'zod';
import type { MailDefinition } from './define.ts';
import { accountExists, passwordReset, verifyEmail, welcome } from './templates/account.ts';
import { paymentFailed, paymentSucceeded, subscriptionEnding, subscriptionExpired } from './templates/billing.ts';
import { backupCreated, provisioningDelayed, restoreComplete, serverReady, serverStoppedIdle } from './templates/server.ts';

export const mailRegistry = {
  'welcome': welcome,
  'verify-email': verifyEmail,
  'password-reset': passwordReset,
  'account-exists': accountExists,
  'server-ready': serverReady,
  'subscription-ending': subscriptionEnding,
  'subscription-expired': subscriptionExpired,
  'backup-created': backupCreated,
  'restore-complete': restoreComplete,
  'payment-succeeded': paymentSucceeded,
  'payment-failed': paymentFailed,
  'server-stopped-idle': serverStoppedIdle,
  'provisioning-delayed': provisioningDelayed,
} as const;

export type MailKind = keyof typeof mailRegistry;

/** The data a kind's template needs, as callers pass it (before defaults and transforms). */
export type MailData<K extends MailKind> = z.input<(typeof mailRegistry)[K]['schema']>;

export const mailKinds = Object.keys(mailRegistry) as MailKind[];

export function isMailKind(value: unknown): value is MailKind {
  return typeof value === 'string' && Object.hasOwn(mailRegistry, value);
}

/** The registry entry of a kind, with its data type widened for code that handles any kind. */
export function mailDefinition(kind: MailKind): MailDefinition<z.ZodType> {
  return mailRegistry[kind] as unknown as MailDefinition<z.ZodType>;
}

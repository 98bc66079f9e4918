/**
 * Sample data for every mail kind: what the preview script and the web app's dev page render.
 * Typed against the registry, so a new kind without a sample does not compile.
 */
import type { MailSamples } from './render.ts';

export const mailSamples: MailSamples = {
  'welcome': { name: 'Ada Lovelace' },
  'verify-email': { name: 'Ada Lovelace', verifyUrl: 'http://localhost:3000/verify-email?token=sample-token', expiresInHours: 24 },
  'password-reset': { name: 'Ada Lovelace', resetUrl: 'http://localhost:3000/reset-password?token=sample-token', expiresInMinutes: 60 },
  'account-exists': { name: 'Ada Lovelace', signInUrl: 'http://localhost:3000/login', resetUrl: 'http://localhost:3000/forgot-password' },
  'server-ready': { name: 'Ada Lovelace', serverAddress: '203.0.113.10' },
  'subscription-ending': { name: 'Ada Lovelace', daysLeft: 3, endsAt: '2026-03-14T09:30:00Z', retentionDays: 30 },
  'subscription-expired': { name: 'Ada Lovelace', dataKeptUntil: '2026-04-13T09:30:00Z' },
  'backup-created': { name: 'Ada Lovelace', createdAt: '2026-03-11T02:00:00Z', sizeBytes: 734_003_200 },
  'restore-complete': { name: 'Ada Lovelace', backupCreatedAt: '2026-03-11T02:00:00Z', serverAddress: '203.0.113.24' },
  'payment-succeeded': { name: 'Ada Lovelace', amountMinor: 1900, currency: 'usd', paidUntil: '2026-04-14T09:30:00Z', invoiceUrl: 'https://invoice.stripe.com/i/sample' },
  'payment-failed': { name: 'Ada Lovelace', amountMinor: 2800, currency: 'jpy', nextAttemptAt: '2026-03-17T09:30:00Z' },
  'server-stopped-idle': { name: 'Ada Lovelace', idleHours: 24 },
  'provisioning-delayed': { name: 'Ada Lovelace' },
};

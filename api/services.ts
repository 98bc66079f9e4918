import { z } from 'zod';
import type { Client } from '@temporalio/client';
import type { Db, Invoice, Plan, User } from '../db/database.ts';
import { listInvoicesOfUser } from '../db/repositories/invoices.ts';
import type { BillingSessions } from '../activities/billing/sessions.ts';
import { NoStripeCustomerError } from '../activities/billing/sessions.ts';
import type { PlanConfig, Plans } from '../activities/billing/plans.ts';
import { isPlan } from '../activities/billing/plans.ts';
import { createUser, EmailTakenError, findUserByEmail } from '../db/repositories/users.ts';
import type { Logger } from '../lib/log.ts';
import type { PublicConfig } from './config.ts';
import { lifecycleView, signalActivity, type customerWorkflowStart } from '../lib/lifecycle-client.ts';
import { lifecycleWorkflowId, applySettingsUpdate, backupNowUpdate, powerOffUpdate, powerOnUpdate, type LifecycleView } from '../workflows/messages.ts';
import { WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import type { AssistantSettings } from '../activities/contracts.ts';
import { secretPurposes } from '../activities/cloud/keys.ts';
import { putEncryptedSecret } from '../db/repositories/encrypted-secrets.ts';
import { encryptSecret, type MasterKeys } from '../lib/secrets.ts';
import { timeZoneChoices } from '../lib/time-zones.ts';
import { hashPassword, verifyPassword } from './auth/passwords.ts';
import { endSession, startSession, userOfRequest } from './auth/sessions.ts';
import { signToken, verifyToken } from './auth/tokens.ts';
import { deleteSessionsOfUser } from '../db/repositories/sessions.ts';
import { findUserById, markEmailVerified, setPasswordHash } from '../db/repositories/users.ts';
import type { createMailActivities } from '../activities/mail/send.ts';
import { errorMessage } from '../lib/errors.ts';

/** Field errors for a form: what the person typed wrong, in words they can act on. */
export type FieldErrors = Partial<Record<string, string>>;
export type FormResult<T> = { ok: true; value: T } | { ok: false; errors: FieldErrors };

export const registrationSchema = z.object({
  name: z.string().trim().min(1, 'Please tell us your name.').max(100, 'That name is longer than 100 characters.'),
  email: z.string().trim().toLowerCase().email('That does not look like an email address.').max(254, 'That email address is too long.'),
  password: z.string().min(10, 'Use at least 10 characters.').max(200, 'Use at most 200 characters.'),
});
export const forgotSchema = z.object({
  email: z.string().trim().toLowerCase().email('That does not look like an email address.'),
});
export const resetSchema = z.object({
  token: z.string().min(1, 'This link is incomplete; ask for a new one.'),
  password: registrationSchema.shape.password,
});
export const loginSchema = z.object({
  email: z.string().trim().min(1, 'Enter your email address.'),
  password: z.string().min(1, 'Enter your password.'),
});

const timeZones = new Set(timeZoneChoices);

/** The settings form: every field may be left empty, which keeps what was saved before. */
export const settingsSchema = z.object({
  model: z.string().trim().max(100, 'That model name is longer than 100 characters.')
    .regex(/^([a-z0-9][a-z0-9-]*\/[A-Za-z0-9][\w.:-]*)?$/, 'Write the model as provider/model, e.g. anthropic/claude-sonnet-4-5.'),
  timeZone: z.string().trim().refine((tz) => tz === '' || timeZones.has(tz), 'Choose a time zone from the list.'),
  apiKey: z.string().trim().max(500, 'That key is longer than 500 characters.')
    .regex(/^([\x21-\x7e]{20,})?$/, 'That does not look like an API key: at least 20 characters, no spaces.'),
});

function fieldErrors(error: z.ZodError): FieldErrors {
  const errors: FieldErrors = {};
  for (const issue of error.issues) {
    const field = String(issue.path[0] ?? 'form');
    errors[field] ??= issue.message;
  }
  return errors;
}

/** What the web app's loaders and actions may use on the server; built by api/main.ts. */
export interface WebServices {
  config: PublicConfig;
  auth: {
    register(form: Record<string, unknown>): Promise<FormResult<{ user: User; setCookie: string }>>;
    login(form: Record<string, unknown>): Promise<FormResult<{ user: User; setCookie: string }>>;
    logout(cookieHeader: string | null): Promise<string>;
    currentUser(cookieHeader: string | null): Promise<User | null>;
    /** Mails a reset link if the address has an account; answers the same either way. */
    requestPasswordReset(form: Record<string, unknown>): Promise<FormResult<null>>;
    resetPassword(form: Record<string, unknown>): Promise<FormResult<{ user: User; setCookie: string }>>;
    /** Marks the address verified; false for a bad or expired link. */
    verifyEmail(token: string): Promise<boolean>;
  };
  billing: {
    plans: readonly PlanConfig[];
    /** Where to send the customer to pay for a plan (Stripe Checkout, or the local checkout page). */
    checkout(user: User, form: Record<string, unknown>): Promise<FormResult<{ url: string }>>;
    /** Where the customer manages card, plan and cancellation; an error if they never subscribed. */
    portal(user: User, form: Record<string, unknown>): Promise<FormResult<{ url: string }>>;
    invoices(userId: string): Promise<Invoice[]>;
  };
  customer: {
    /** The lifecycle as the workflow sees it now, or null before the customer's workflow exists. */
    view(userId: string): Promise<LifecycleView | null>;
    /** A customer command on their server; the workflow's validator or handler explains a refusal. */
    command(userId: string, command: CustomerCommand): Promise<{ ok: true; message: string } | { ok: false; message: string }>;
    /**
     * Saves the assistant's settings: the API key encrypted in the database, only its id in the
     * workflow. Answers once the workflow accepted them; it applies them on the server by itself.
     */
    saveSettings(userId: string, form: Record<string, unknown>): Promise<FormResult<{ message: string }>>;
  };
}

export const customerCommands = ['backup_now', 'power_on', 'power_off'] as const;
export type CustomerCommand = (typeof customerCommands)[number];

export interface WebServiceDeps {
  db: Db;
  temporal: Client;
  config: PublicConfig;
  secureCookies: boolean;
  log: Logger;
  plans: Plans;
  billingSessions: BillingSessions;
  lifecycle: ReturnType<typeof customerWorkflowStart>;
  /** Sends account mails (verify address, reset password) through the mail log and transport. */
  mailer: ReturnType<typeof createMailActivities>;
  appUrl: string;
  /** Signs verification and reset links (SESSION_SECRET). */
  tokenSecret: string;
  /** Encrypts what customers hand us (their model API key) before it is stored. */
  masterKeys: MasterKeys;
  /** Called once a user exists: e.g. start the customer's lifecycle workflow. */
  onRegistered?: (user: User) => Promise<void>;
}

/** Page views signal activity at most this often per customer: enough to wake an idle server. */
const activityEveryMs = 5 * 60_000;

export function createWebServices(deps: WebServiceDeps): WebServices {
  const { db, secureCookies, log } = deps;
  const lastActivity = new Map<string, number>();
  const hour = 3_600_000;

  async function sendVerification(user: User): Promise<void> {
    const token = signToken(deps.tokenSecret, 'verify-email', user.id, new Date(Date.now() + 48 * hour));
    await deps.mailer.sendMail({ kind: 'verify-email', to: user.email, userId: user.id, period: tokenId(token),
      data: { name: user.name, verifyUrl: `${deps.appUrl}/verify-email?token=${token}`, expiresInHours: 48 } });
  }
  return {
    config: deps.config,
    auth: {
      async register(form) {
        const parsed = registrationSchema.safeParse(form);
        if (!parsed.success) return { ok: false, errors: fieldErrors(parsed.error) };
        try {
          const { name, email, password } = parsed.data;
          const user = await createUser(db, { name, email, passwordHash: await hashPassword(password) });
          log.info({ userId: user.id }, 'user registered');
          await deps.onRegistered?.(user);
          await sendVerification(user).catch((err: unknown) =>
            log.warn({ userId: user.id, err: errorMessage(err) }, 'could not send the verification mail'));
          return { ok: true, value: { user, setCookie: await startSession(db, user.id, secureCookies) } };
        } catch (err) {
          if (err instanceof EmailTakenError) return { ok: false, errors: { email: 'An account with this email exists already. Sign in instead?' } };
          throw err;
        }
      },
      async login(form) {
        const parsed = loginSchema.safeParse(form);
        if (!parsed.success) return { ok: false, errors: fieldErrors(parsed.error) };
        const user = await findUserByEmail(db, parsed.data.email);
        // The same answer whether the email is unknown or the password wrong: no account probing.
        const valid = user ? await verifyPassword(parsed.data.password, user.passwordHash) : await hashPassword(parsed.data.password).then(() => false);
        if (!user || !valid) return { ok: false, errors: { form: 'That email and password do not match an account.' } };
        return { ok: true, value: { user, setCookie: await startSession(db, user.id, secureCookies) } };
      },
      logout: (cookieHeader) => endSession(db, cookieHeader, secureCookies),
      currentUser: (cookieHeader) => userOfRequest(db, cookieHeader),
      async requestPasswordReset(form) {
        const parsed = forgotSchema.safeParse(form);
        if (!parsed.success) return { ok: false, errors: fieldErrors(parsed.error) };
        const user = await findUserByEmail(db, parsed.data.email);
        if (user) {
          const token = signToken(deps.tokenSecret, 'password-reset', user.id, new Date(Date.now() + hour), user.passwordHash);
          await deps.mailer.sendMail({ kind: 'password-reset', to: user.email, userId: user.id, period: tokenId(token),
            data: { name: user.name, resetUrl: `${deps.appUrl}/reset-password?token=${token}`, expiresInMinutes: 60 } });
        }
        return { ok: true, value: null };
      },
      async resetPassword(form) {
        const parsed = resetSchema.safeParse(form);
        if (!parsed.success) return { ok: false, errors: fieldErrors(parsed.error) };
        const userId = await verifyToken(deps.tokenSecret, 'password-reset', parsed.data.token,
          async (id) => (await findUserById(db, id))?.passwordHash ?? '');
        if (!userId) return { ok: false, errors: { form: 'This reset link has expired or was used already. Ask for a new one.' } };
        await setPasswordHash(db, userId, await hashPassword(parsed.data.password));
        // Whoever knew the old password is signed out everywhere.
        await deleteSessionsOfUser(db, userId);
        const user = (await findUserById(db, userId))!;
        log.info({ userId }, 'password reset');
        return { ok: true, value: { user, setCookie: await startSession(db, userId, secureCookies) } };
      },
      async verifyEmail(token) {
        const userId = await verifyToken(deps.tokenSecret, 'verify-email', token);
        if (!userId) return false;
        await markEmailVerified(db, userId);
        return true;
      },
    },
    billing: {
      plans: Object.values(deps.plans),
      async checkout(user, form) {
        const plan = form.plan;
        if (!isPlan(plan)) return { ok: false, errors: { plan: 'Choose one of the plans.' } };
        const requestId = requestIdOf(form);
        if (!requestId) return { ok: false, errors: { form: 'This form has expired; reload the page and try again.' } };
        const session = await deps.billingSessions.createCheckoutSession({ userId: user.id, email: user.email, plan: plan as Plan, requestId });
        return { ok: true, value: { url: session.url } };
      },
      async portal(user, form) {
        const requestId = requestIdOf(form);
        if (!requestId) return { ok: false, errors: { form: 'This form has expired; reload the page and try again.' } };
        try {
          const session = await deps.billingSessions.createPortalSession({ userId: user.id, requestId });
          return { ok: true, value: { url: session.url } };
        } catch (err) {
          if (err instanceof NoStripeCustomerError) return { ok: false, errors: { form: 'Subscribe to a plan first; then you can manage it here.' } };
          throw err;
        }
      },
      invoices: (userId) => listInvoicesOfUser(db, userId),
    },
    customer: {
      async view(userId) {
        // Seeing the dashboard counts as activity: it wakes an idle server (and starts the workflow).
        if (Date.now() - (lastActivity.get(userId) ?? 0) > activityEveryMs) {
          lastActivity.set(userId, Date.now());
          await signalActivity(deps.temporal, deps.lifecycle, userId, 'dashboard').catch((err: unknown) =>
            log.warn({ err: errorMessage(err), userId }, 'could not signal activity'));
        }
        return lifecycleView(deps.temporal, userId);
      },
      async command(userId, command) {
        const handle = deps.temporal.workflow.getHandle(lifecycleWorkflowId(userId));
        try {
          switch (command) {
            case 'backup_now': {
              const backup = await handle.executeUpdate(backupNowUpdate);
              return { ok: true, message: `Backup done and verified (${(backup.sizeBytes / 1e6).toFixed(1)} MB).` };
            }
            case 'power_on':
              await handle.executeUpdate(powerOnUpdate);
              return { ok: true, message: 'Your server is on.' };
            case 'power_off':
              await handle.executeUpdate(powerOffUpdate);
              return { ok: true, message: 'Your server is off. It starts again when you use your assistant.' };
          }
        } catch (err) {
          if (err instanceof WorkflowUpdateFailedError) return { ok: false, message: err.cause?.message ?? err.message };
          log.error({ err: errorMessage(err), userId, command }, 'customer command failed');
          return { ok: false, message: 'That did not work this time; please try again in a minute.' };
        }
      },
      async saveSettings(userId, form) {
        const parsed = settingsSchema.safeParse(form);
        if (!parsed.success) return { ok: false, errors: fieldErrors(parsed.error) };
        const { model, timeZone, apiKey } = parsed.data;
        const current = await lifecycleView(deps.temporal, userId);
        if (current === null) return { ok: false, errors: { form: 'Choose a plan first; your assistant is set up with it.' } };
        // The key's environment variable is named after the model's provider, so a key needs a model.
        if (apiKey && !model && !current.settings.model) return { ok: false, errors: { model: 'Choose the model this key is for.' } };
        if (!model && !timeZone && !apiKey) return { ok: false, errors: { form: 'Nothing to change: fill in what you want to change.' } };
        const settings: AssistantSettings = {};
        if (model) settings.model = model;
        if (timeZone) settings.timeZone = timeZone;
        if (apiKey) {
          // Replaces an earlier key (one per customer); the workflow only ever sees the row's id.
          const context = `${userId}/${secretPurposes.modelApiKey}`;
          const row = await putEncryptedSecret(db, { owner: userId, purpose: secretPurposes.modelApiKey, ...encryptSecret(deps.masterKeys, apiKey, context) });
          settings.apiKeySecretId = row.id;
        }
        try {
          await deps.temporal.workflow.getHandle(lifecycleWorkflowId(userId)).startUpdate(applySettingsUpdate, { args: [settings], waitForStage: 'ACCEPTED' });
        } catch (err) {
          if (err instanceof WorkflowUpdateFailedError) return { ok: false, errors: { form: err.cause?.message ?? err.message } };
          if (err instanceof WorkflowNotFoundError) return { ok: false, errors: { form: 'Choose a plan first; your assistant is set up with it.' } };
          log.error({ err: errorMessage(err), userId }, 'saving settings failed');
          return { ok: false, errors: { form: 'Your settings could not be saved this time; please try again in a minute.' } };
        }
        const running = current.server !== null && current.server.power === 'running';
        return { ok: true, value: { message: running ? 'Saved. Your assistant is being restarted with these settings.' : 'Saved. They apply when your server next runs.' } };
      },
    },
  };
}

/** A short id of a signed link, for the mail log's idempotency key (one mail per link). */
function tokenId(token: string): string {
  return token.split('.')[1]!.slice(0, 22);
}

/** The form's one-time request id: a retried submit reuses its Checkout Session, a new visit gets a new one. */
function requestIdOf(form: Record<string, unknown>): string | null {
  const id = form.requestId;
  return typeof id === 'string' && /^[A-Za-z0-9_-]{16,64}$/.test(id) ? id : null;
}

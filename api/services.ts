import { z } from 'zod';
import type { Client as TemporalClient } from '@temporalio/client';
import type { Db, Invoice, Plan, User } from '../db/database.ts';
import { listInvoicesOfUser } from '../db/repositories/invoices.ts';
import type { BillingSessions } from '../activities/billing/sessions.ts';
import { NoStripeCustomerError } from '../activities/billing/sessions.ts';
import type { PlanConfig, Plans } from '../activities/billing/plans.ts';
import { isPlan } from '../activities/billing/plans.ts';
import { createUser, EmailTakenError, findUserByEmail } from '../db/repositories/users.ts';
import type { Session } from '../db/database.ts';
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
import { HashingBusy, hashPassword, verifyAgainstNothing, verifyPassword } from './auth/passwords.ts';
import { endSession, recentlyAuthenticated, refreshAuthentication, sessionOfRequest, startSession, type SessionPolicy } from './auth/sessions.ts';
import { retryText, throttleRules, type Throttle, type ThrottleCheck } from './auth/throttle.ts';
import { signToken, verifyToken } from './auth/tokens.ts';
import { deleteSessionsOfUser } from '../db/repositories/sessions.ts';
import { findUserById, markEmailVerified, setPasswordHash } from '../db/repositories/users.ts';
import type { MailComposer, MailOutbox } from './mail-outbox.ts';
import type { SessionsEnded } from './live-sessions.ts';
import { errorMessage } from '../lib/errors.ts';

/** Field errors for a form: what the person typed wrong, in words they can act on. */
export type FieldErrors = Partial<Record<string, string>>;
/** A refused form; `retryAfterSeconds` when refused for coming too often (HTTP 429) or while busy (503). */
export type FormResult<T> = { ok: true; value: T } | { ok: false; errors: FieldErrors; retryAfterSeconds?: number; busy?: boolean };

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
  email: z.string().trim().min(1, 'Enter your email address.').max(254, 'That email address is too long.'),
  password: z.string().min(1, 'Enter your password.').max(1000, 'That password is too long.'),
});
export const confirmPasswordSchema = z.object({ password: loginSchema.shape.password });

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

/** Who is asking, beyond the form: the client's address (throttling counts by it). */
export interface Client {
  ip: string;
}

/** What the web app's loaders and actions may use on the server; built by api/main.ts. */
export interface WebServices {
  config: PublicConfig;
  auth: {
    /**
     * Creates an unverified account and mails a confirmation link; for an address that has an
     * account, mails "you already have an account" instead. Answers the same either way (no
     * session: the link or the sign-in page comes next), so the page tells nobody which it was.
     */
    register(form: Record<string, unknown>, client: Client): Promise<FormResult<null>>;
    login(form: Record<string, unknown>, client: Client): Promise<FormResult<{ user: User; setCookie: string }>>;
    /** Ends the request's session (its live sockets close); returns the Set-Cookie value. */
    logout(cookieHeader: string | null): Promise<string>;
    currentUser(cookieHeader: string | null): Promise<User | null>;
    /** The request's session; `recent` when its password was typed within the re-authentication window. */
    session(cookieHeader: string | null): Promise<{ user: User; session: Session; recent: boolean } | null>;
    /** The password typed again on the current session (before a terminal or a new API key). */
    confirmPassword(cookieHeader: string | null, form: Record<string, unknown>, client: Client): Promise<FormResult<null>>;
    /** Mails a reset link if the address has an account; answers the same either way. */
    requestPasswordReset(form: Record<string, unknown>, client: Client): Promise<FormResult<null>>;
    resetPassword(form: Record<string, unknown>, client: Client): Promise<FormResult<{ user: User; setCookie: string }>>;
    /** Marks the address verified; false for a bad or expired link (or while throttled). */
    verifyEmail(token: string, client: Client): Promise<boolean>;
    /** Mails the signed-in user a new confirmation link (quota per address). */
    resendVerification(user: User, client: Client): Promise<FormResult<{ message: string }>>;
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
    saveSettings(userId: string, form: Record<string, unknown>, request: { cookieHeader: string | null; client: Client }): Promise<FormResult<{ message: string }>>;
  };
}

export const customerCommands = ['backup_now', 'power_on', 'power_off'] as const;
export type CustomerCommand = (typeof customerCommands)[number];

export interface WebServiceDeps {
  db: Db;
  temporal: TemporalClient;
  config: PublicConfig;
  /** Idle and absolute session limits, and the re-authentication window. */
  sessionPolicy: SessionPolicy;
  throttle: Throttle;
  log: Logger;
  plans: Plans;
  billingSessions: BillingSessions;
  lifecycle: ReturnType<typeof customerWorkflowStart>;
  /** Account mails (verify address, reset password, account exists) go out through it, off the request. */
  outbox: Pick<MailOutbox, 'enqueue'>;
  /** Sessions ended (sign-out, password reset): their live sockets must close everywhere. */
  onSessionsEnded?: (ended: SessionsEnded) => void;
  appUrl: string;
  /** Signs verification and reset links (SESSION_SECRET). */
  tokenSecret: string;
  /** Encrypts what customers hand us (their model API key) before it is stored. */
  masterKeys: MasterKeys;
  /** Called once a user's address is confirmed: e.g. start the customer's lifecycle workflow. */
  onRegistered?: (user: User) => Promise<void>;
}

/** What a customer reads when a command on their server did not work (the reason goes to the log). */
const commandFailed: Record<CustomerCommand, string> = {
  backup_now: 'The backup did not complete; your earlier backups are safe. Please try again in a few minutes.',
  power_on: 'Your server could not be started right now; please try again in a few minutes.',
  power_off: 'Your server could not be stopped right now; please try again in a few minutes.',
};

/** Page views signal activity at most this often per customer: enough to wake an idle server. */
const activityEveryMs = 5 * 60_000;

export function createWebServices(deps: WebServiceDeps): WebServices {
  const { db, log, throttle, sessionPolicy: policy } = deps;
  const lastActivity = new Map<string, number>();
  const hour = 3_600_000;

  function queueVerification(user: User): Promise<void> {
    const token = signToken(deps.tokenSecret, 'verify-email', user.id, new Date(Date.now() + 48 * hour));
    return deps.outbox.enqueue({ kind: 'verify-email', to: user.email, userId: user.id, period: tokenId(token),
      data: { name: user.name, verifyUrl: `${deps.appUrl}/verify-email?token=${token}`, expiresInHours: 48 } });
  }
  /** Refused for coming too often: the form's error, and the status and Retry-After the page sends. */
  const throttled = (retryAfterSeconds: number) => ({ ok: false as const, errors: { form: retryText(retryAfterSeconds) }, retryAfterSeconds });
  const busy = () => ({ ok: false as const, errors: { form: 'Berth is busy right now; please try again in a few seconds.' }, retryAfterSeconds: 5, busy: true });
  /** Runs a password check; a full hashing queue becomes a "busy" answer instead of an error page. */
  async function withHashing<T>(work: () => Promise<T>): Promise<T | ReturnType<typeof busy>> {
    try {
      return await work();
    } catch (err) {
      if (err instanceof HashingBusy) return busy();
      throw err;
    }
  }
  const signInChecks = (email: string, client: Client): ThrottleCheck[] => [
    { rule: throttleRules.signInAccount, key: email.trim().toLowerCase() },
    { rule: throttleRules.signInClient, key: client.ip },
  ];

  /** Checks a password for an address with growing delays per account and per client; the user when right. */
  async function checkPassword(email: string, password: string, client: Client): Promise<{ user: User } | FormResult<never>> {
    const checks = signInChecks(email, client);
    const wait = await throttle.blocked(checks);
    if (wait) return throttled(wait.retryAfterSeconds);
    const user = await findUserByEmail(db, email);
    // The same work and the same answer whether the email is unknown or the password wrong.
    const result = await withHashing(() => (user ? verifyPassword(password, user.passwordHash) : verifyAgainstNothing(password).then(() => ({ valid: false, needsRehash: false }))));
    if ('ok' in result) return result;
    if (!user || !result.valid) {
      const started = await throttle.count(checks);
      if (started) log.warn({ client: client.ip, retryAfterSeconds: started.retryAfterSeconds }, 'sign-in throttled after repeated failures');
      return { ok: false, errors: { form: 'That email and password do not match an account.' } };
    }
    await throttle.reset([checks[0]!]);
    // Older hashes (scrypt, weaker argon2 settings) move to today's with the password at hand.
    if (result.needsRehash) {
      await hashPassword(password).then((hash) => setPasswordHash(db, user.id, hash)).catch((err: unknown) =>
        log.warn({ userId: user.id, err: errorMessage(err) }, 'could not upgrade a password hash'));
    }
    return { user };
  }

  /** The password typed again on the request's session: sensitive actions open for another window. */
  async function confirmPassword(cookieHeader: string | null, form: Record<string, unknown>, client: Client): Promise<FormResult<null>> {
    const found = await sessionOfRequest(db, cookieHeader, policy);
    if (!found) return { ok: false, errors: { form: 'Your session ended; sign in again.' } };
    const parsed = confirmPasswordSchema.safeParse(form);
    if (!parsed.success) return { ok: false, errors: fieldErrors(parsed.error) };
    const checked = await checkPassword(found.user.email, parsed.data.password, client);
    if (!('user' in checked)) return 'retryAfterSeconds' in checked ? checked : { ok: false, errors: { password: 'That is not your password.' } };
    await refreshAuthentication(db, found.session.id);
    return { ok: true, value: null };
  }

  async function endSessionsOf(userId: string): Promise<void> {
    const ids = await deleteSessionsOfUser(db, userId);
    if (ids.length > 0) deps.onSessionsEnded?.({ userId, sessionIds: ids, reason: 'password-reset' });
  }

  return {
    config: deps.config,
    auth: {
      async register(form, client) {
        const parsed = registrationSchema.safeParse(form);
        if (!parsed.success) return { ok: false, errors: fieldErrors(parsed.error) };
        const { name, email, password } = parsed.data;
        const checks = [{ rule: throttleRules.registerClient, key: client.ip }, { rule: throttleRules.mailAddress, key: email }];
        const wait = await throttle.blocked(checks);
        if (wait) return throttled(wait.retryAfterSeconds);
        await throttle.count(checks);
        // Hash first, whoever owns the address: both answers take the same time.
        const hashed = await withHashing(() => hashPassword(password));
        if (typeof hashed !== 'string') return hashed;
        let existing = await findUserByEmail(db, email);
        if (!existing) {
          try {
            const user = await createUser(db, { name, email, passwordHash: hashed });
            log.info({ userId: user.id }, 'user registered');
            await queueVerification(user);
            return { ok: true, value: null };
          } catch (err) {
            if (!(err instanceof EmailTakenError)) throw err;
            existing = await findUserByEmail(db, email);
          }
        }
        // Nothing about the existing account changes; its owner hears of the attempt, at most once an hour.
        if (existing) {
          await deps.outbox.enqueue({ kind: 'account-exists', to: existing.email, userId: existing.id, period: `signup-${new Date().toISOString().slice(0, 13)}`,
            data: { name: existing.name, signInUrl: `${deps.appUrl}/login`, resetUrl: `${deps.appUrl}/forgot-password` } });
        }
        return { ok: true, value: null };
      },
      async login(form, client) {
        const parsed = loginSchema.safeParse(form);
        if (!parsed.success) return { ok: false, errors: fieldErrors(parsed.error) };
        const checked = await checkPassword(parsed.data.email, parsed.data.password, client);
        if (!('user' in checked)) return checked;
        return { ok: true, value: { user: checked.user, setCookie: await startSession(db, checked.user.id, policy) } };
      },
      async logout(cookieHeader) {
        const { sessionId, setCookie } = await endSession(db, cookieHeader);
        if (sessionId) deps.onSessionsEnded?.({ sessionIds: [sessionId], reason: 'signed-out' });
        return setCookie;
      },
      currentUser: async (cookieHeader) => (await sessionOfRequest(db, cookieHeader, policy))?.user ?? null,
      async session(cookieHeader) {
        const found = await sessionOfRequest(db, cookieHeader, policy);
        return found ? { ...found, recent: recentlyAuthenticated(found.session, policy) } : null;
      },
      confirmPassword,
      async requestPasswordReset(form, client) {
        const parsed = forgotSchema.safeParse(form);
        if (!parsed.success) return { ok: false, errors: fieldErrors(parsed.error) };
        const checks = [{ rule: throttleRules.resetClient, key: client.ip }, { rule: throttleRules.mailAddress, key: parsed.data.email }];
        const wait = await throttle.blocked(checks);
        if (wait) return throttled(wait.retryAfterSeconds);
        await throttle.count(checks);
        // Whether the address has an account is looked up when the mail is sent, not here: this
        // answer does the same work either way (passwordResetMail).
        await deps.outbox.enqueue({ deferred: passwordResetMailName, input: { email: parsed.data.email } });
        return { ok: true, value: null };
      },
      async resetPassword(form, client) {
        const parsed = resetSchema.safeParse(form);
        if (!parsed.success) return { ok: false, errors: fieldErrors(parsed.error) };
        const checks = [{ rule: throttleRules.verifyClient, key: client.ip }];
        const wait = await throttle.blocked(checks);
        if (wait) return throttled(wait.retryAfterSeconds);
        const userId = await verifyToken(deps.tokenSecret, 'password-reset', parsed.data.token,
          async (id) => (await findUserById(db, id))?.passwordHash ?? '');
        if (!userId) {
          await throttle.count(checks);
          return { ok: false, errors: { form: 'This reset link has expired or was used already. Ask for a new one.' } };
        }
        const hashed = await withHashing(() => hashPassword(parsed.data.password));
        if (typeof hashed !== 'string') return hashed;
        await setPasswordHash(db, userId, hashed);
        // The link came by mail: the address is proven too.
        await markEmailVerified(db, userId);
        // Whoever knew the old password is signed out everywhere, live sockets included.
        await endSessionsOf(userId);
        await throttle.reset([{ rule: throttleRules.signInAccount, key: (await findUserById(db, userId))!.email }]);
        const user = (await findUserById(db, userId))!;
        log.info({ userId }, 'password reset');
        return { ok: true, value: { user, setCookie: await startSession(db, userId, policy) } };
      },
      async verifyEmail(token, client) {
        const checks = [{ rule: throttleRules.verifyClient, key: client.ip }];
        if (await throttle.blocked(checks)) return false;
        const userId = await verifyToken(deps.tokenSecret, 'verify-email', token);
        if (!userId) {
          await throttle.count(checks);
          return false;
        }
        const before = await findUserById(db, userId);
        if (!before) return false;
        await markEmailVerified(db, userId);
        if (!before.emailVerifiedAt) {
          await deps.onRegistered?.(before).catch((err: unknown) =>
            log.warn({ userId, err: errorMessage(err) }, 'could not start the customer workflow'));
        }
        return true;
      },
      async resendVerification(user, client) {
        if (user.emailVerifiedAt) return { ok: true, value: { message: 'Your email address is confirmed already.' } };
        const checks = [{ rule: throttleRules.mailAddress, key: user.email }, { rule: throttleRules.resetClient, key: client.ip }];
        const wait = await throttle.blocked(checks);
        if (wait) return throttled(wait.retryAfterSeconds);
        await throttle.count(checks);
        await queueVerification(user);
        return { ok: true, value: { message: `We sent a new link to ${user.email}.` } };
      },
    },
    billing: {
      plans: Object.values(deps.plans),
      async checkout(user, form) {
        // No payment before the address is confirmed (docs/decisions): mail about the server must reach its owner.
        if (!user.emailVerifiedAt) return { ok: false, errors: { form: 'Confirm your email address first: open the link we mailed you, or send a new one below.' } };
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
        // Seeing the dashboard counts as activity: it wakes an idle server (and starts the workflow,
        // whose first act is the welcome mail: so only once the address is confirmed).
        if (Date.now() - (lastActivity.get(userId) ?? 0) > activityEveryMs && (await findUserById(db, userId))?.emailVerifiedAt) {
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
          // The workflow's reasons name activities, hosts and commands: they go to the log, the customer gets words.
          const detail = err instanceof WorkflowUpdateFailedError ? err.cause?.message ?? err.message : errorMessage(err);
          log.warn({ err: detail, userId, command }, 'customer command failed');
          return { ok: false, message: commandFailed[command] };
        }
      },
      async saveSettings(userId, form, request) {
        const parsed = settingsSchema.safeParse(form);
        if (!parsed.success) return { ok: false, errors: fieldErrors(parsed.error) };
        const { model, timeZone, apiKey } = parsed.data;
        // A new key goes to the customer's server: only with a password typed recently on this session.
        if (apiKey) {
          const signedIn = await sessionOfRequest(db, request.cookieHeader, policy);
          if (!signedIn || signedIn.user.id !== userId) return { ok: false, errors: { form: 'Your session ended; sign in again.' } };
          if (!recentlyAuthenticated(signedIn.session, policy)) {
            if (!form.password) return { ok: false, errors: { password: 'Enter your password to change the API key.' } };
            const confirmed = await confirmPassword(request.cookieHeader, form, request.client);
            if (!confirmed.ok) return confirmed;
          }
        }
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
          if (err instanceof WorkflowUpdateFailedError) {
            log.warn({ err: err.cause?.message ?? err.message, userId }, 'settings refused by the workflow');
            return { ok: false, errors: { form: 'These settings cannot be applied right now; please try again in a few minutes.' } };
          }
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

/** The deferred mail a reset request queues (api/mail-outbox.ts). */
export const passwordResetMailName = 'password-reset';

/**
 * Composes, at sending time, the reset mail a request asked for `email`: a link signed for an hour and
 * bound to the current password hash, or no mail when no account uses the address.
 */
export function passwordResetMail(deps: { db: Db; tokenSecret: string; appUrl: string }): MailComposer {
  return async ({ email }) => {
    const user = email ? await findUserByEmail(deps.db, email) : undefined;
    if (!user) return null;
    const token = signToken(deps.tokenSecret, 'password-reset', user.id, new Date(Date.now() + 3_600_000), user.passwordHash);
    return { kind: 'password-reset', to: user.email, userId: user.id, period: tokenId(token),
      data: { name: user.name, resetUrl: `${deps.appUrl}/reset-password?token=${token}`, expiresInMinutes: 60 } };
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

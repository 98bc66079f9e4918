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
import { customerWorkflowId } from '../activities/billing/billing-event.ts';
import { backupNowUpdate, powerOffUpdate, powerOnUpdate, type LifecycleView } from '../workflows/messages.ts';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { hashPassword, verifyPassword } from './auth/passwords.ts';
import { endSession, startSession, userOfRequest } from './auth/sessions.ts';

/** Field errors for a form: what the person typed wrong, in words they can act on. */
export type FieldErrors = Partial<Record<string, string>>;
export type FormResult<T> = { ok: true; value: T } | { ok: false; errors: FieldErrors };

export const registrationSchema = z.object({
  name: z.string().trim().min(1, 'Please tell us your name.').max(100, 'That name is longer than 100 characters.'),
  email: z.string().trim().toLowerCase().email('That does not look like an email address.').max(254, 'That email address is too long.'),
  password: z.string().min(10, 'Use at least 10 characters.').max(200, 'Use at most 200 characters.'),
});
export const loginSchema = z.object({
  email: z.string().trim().min(1, 'Enter your email address.'),
  password: z.string().min(1, 'Enter your password.'),
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
  /** Called once a user exists: e.g. start the customer's lifecycle workflow. */
  onRegistered?: (user: User) => Promise<void>;
}

/** Page views signal activity at most this often per customer: enough to wake an idle server. */
const activityEveryMs = 5 * 60_000;

export function createWebServices(deps: WebServiceDeps): WebServices {
  const { db, secureCookies, log } = deps;
  const lastActivity = new Map<string, number>();
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
            log.warn({ err: err instanceof Error ? err.message : String(err), userId }, 'could not signal activity'));
        }
        return lifecycleView(deps.temporal, userId);
      },
      async command(userId, command) {
        const handle = deps.temporal.workflow.getHandle(customerWorkflowId(userId));
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
          log.error({ err: err instanceof Error ? err.message : String(err), userId, command }, 'customer command failed');
          return { ok: false, message: 'That did not work this time; please try again in a minute.' };
        }
      },
    },
  };
}

/** The form's one-time request id: a retried submit reuses its Checkout Session, a new visit gets a new one. */
function requestIdOf(form: Record<string, unknown>): string | null {
  const id = form.requestId;
  return typeof id === 'string' && /^[A-Za-z0-9_-]{16,64}$/.test(id) ? id : null;
}

import type { ReactElement } from 'react';
import { z } from 'zod';
import type { MailLinks } from './layout.ts';

/** What a template gets besides its data: where the app lives. */
export interface MailContext {
  appUrl: string;
  links: MailLinks;
}

/** One mail kind: how to validate its data, its subject line, and its body. */
export interface MailDefinition<S extends z.ZodType> {
  schema: S;
  subject(data: z.output<S>): string;
  component(data: z.output<S>, ctx: MailContext): ReactElement;
  /**
   * Distinguishes mails of one kind in one period (the 7-, 3- and 1-day reminders of the same
   * subscription period): becomes part of the idempotency key.
   */
  keyVariant?(data: z.output<S>): string;
}

/** Identity, for type inference of `data` in subject/component from the schema. */
export function defineMail<S extends z.ZodType>(def: MailDefinition<S>): MailDefinition<S> {
  return def;
}

/**
 * A person's display name. Control characters are refused because names reach the Subject header
 * in some mails, and a newline there would be header injection.
 */
export const personName = z
  .string()
  .trim()
  .min(1, 'name must not be empty')
  .max(200)
  .regex(/^[^\p{Cc}]*$/u, 'name must not contain control characters');

/** An absolute http(s) URL. */
export const httpUrl = z.url({ protocol: /^https?$/ });

/** An ISO 8601 timestamp, as timestamps arrive through JSON (Temporal payloads, API bodies). */
export const isoTimestamp = z.iso.datetime({ offset: true });

/** An ISO 4217 code, either case (Stripe sends lowercase). */
export const currencyCode = z.string().regex(/^[A-Za-z]{3}$/, 'currency must be a three-letter ISO 4217 code').transform((c) => c.toUpperCase());

/** A server's public address: IPv4, IPv6 or a host name. */
export const serverAddress = z.union([z.ipv4(), z.ipv6(), z.hostname()]);

/**
 * Turns a kind and its data into a finished mail: validated data, subject, HTML and plain text.
 */
import { render } from '@react-email/render';
import { z } from 'zod';
import { mailLinks } from './layout.ts';
import { isMailKind, mailDefinition, mailKinds, type MailData, type MailKind } from './registry.ts';

export interface RenderedMail {
  kind: MailKind;
  subject: string;
  html: string;
  text: string;
  /** Extra part of the idempotency key for this kind and data ('' when the kind has none). */
  keyVariant: string;
}

export interface RenderOptions {
  /** Base of every link into the app (APP_URL). */
  appUrl: string;
}

/** Data that does not match a kind's schema, or a kind that does not exist. Retrying cannot fix it. */
export class MailDataError extends Error {
  override name = 'MailDataError';
}

/**
 * Validates `data` against the kind's schema and renders it. Throws MailDataError naming the kind
 * and each bad field when the data is wrong.
 */
export async function renderMail<K extends MailKind>(kind: K, data: MailData<K>, options: RenderOptions): Promise<RenderedMail>;
export async function renderMail(kind: string, data: unknown, options: RenderOptions): Promise<RenderedMail>;
export async function renderMail(kind: string, data: unknown, options: RenderOptions): Promise<RenderedMail> {
  if (!isMailKind(kind)) throw new MailDataError(`Unknown mail kind "${kind}"; known kinds: ${mailKinds.join(', ')}`);
  const definition = mailDefinition(kind);
  const parsed = definition.schema.safeParse(data);
  if (!parsed.success) {
    throw new MailDataError(`Invalid data for mail "${kind}":\n${z.prettifyError(parsed.error)}`);
  }
  const element = definition.component(parsed.data, { appUrl: options.appUrl, links: mailLinks(options.appUrl) });
  const [html, text] = await Promise.all([render(element), render(element, { plainText: true })]);
  return { kind, subject: definition.subject(parsed.data), html, text, keyVariant: definition.keyVariant?.(parsed.data) ?? '' };
}

/** Sample data for every kind (see samples.ts): what previews render. */
export type MailSamples = { [K in MailKind]: MailData<K> };

/** Every kind rendered with its sample data, in registry order: for the dev preview page and script. */
export async function renderAll(samples: MailSamples, options: RenderOptions = { appUrl: 'http://localhost:3000' }): Promise<Array<{ kind: MailKind; subject: string; html: string; text: string }>> {
  const out = [];
  for (const kind of mailKinds) {
    const mail = await renderMail(kind, samples[kind], options);
    out.push({ kind, subject: mail.subject, html: mail.html, text: mail.text });
  }
  return out;
}

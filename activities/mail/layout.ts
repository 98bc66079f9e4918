/**
 * The frame every Berth mail shares, and small helpers so templates read like markup without JSX
 * (the worker runs plain `node`, which cannot strip JSX).
 */
import { createElement, type ReactElement, type ReactNode } from 'react';
import { Body, Button, Container, Head, Heading, Hr, Html, Link, Preview, Section, Text } from '@react-email/components';

export const h = createElement;

/** Links every mail may point at, all under APP_URL. The web app owns these routes. */
export interface MailLinks {
  dashboard: string;
  /** Renew or change the plan. */
  billing: string;
  /**
   * Opens a fresh Stripe billing-portal session on click: portal session URLs expire within
   * minutes, so a mail must never carry one.
   */
  billingPortal: string;
  settings: string;
}

export function mailLinks(appUrl: string): MailLinks {
  const base = appUrl.replace(/\/+$/, '');
  return {
    dashboard: `${base}/dashboard`,
    billing: `${base}/billing`,
    billingPortal: `${base}/billing/portal`,
    settings: `${base}/settings`,
  };
}

const styles = {
  body: { backgroundColor: '#f4f5f7', fontFamily: 'Helvetica, Arial, sans-serif', margin: 0, padding: '24px 0' },
  container: { backgroundColor: '#ffffff', borderRadius: '8px', margin: '0 auto', maxWidth: '560px', padding: '32px' },
  heading: { color: '#111827', fontSize: '22px', margin: '0 0 16px' },
  text: { color: '#374151', fontSize: '15px', lineHeight: '24px', margin: '0 0 14px' },
  button: { backgroundColor: '#1d4ed8', borderRadius: '6px', color: '#ffffff', display: 'inline-block', fontSize: '15px', fontWeight: 600, padding: '12px 20px', textDecoration: 'none' },
  footer: { color: '#6b7280', fontSize: '12px', lineHeight: '18px', margin: 0 },
  code: { backgroundColor: '#f3f4f6', borderRadius: '4px', fontFamily: 'Menlo, Consolas, monospace', padding: '2px 6px' },
} as const;

export interface LayoutProps {
  /** Inbox preview line. */
  preview: string;
  heading: string;
  appUrl: string;
  /** Body blocks in order; spread as separate children so React needs no keys. */
  children: ReactNode[];
}

/** Page frame: preview text, heading, body, and a footer that says why the reader got this mail. */
export function layout({ preview, heading, appUrl, children }: LayoutProps): ReactElement {
  return h(Html, { lang: 'en' },
    h(Head, null),
    h(Preview, null, preview),
    h(Body, { style: styles.body },
      h(Container, { style: styles.container },
        h(Heading, { as: 'h1', style: styles.heading }, heading),
        ...children,
        h(Hr, { style: { borderColor: '#e5e7eb', margin: '24px 0' } }),
        h(Text, { style: styles.footer },
          'You get this mail because you have a Berth account. ',
          h(Link, { href: mailLinks(appUrl).settings, style: { color: '#6b7280' } }, 'Account settings'),
        ),
      ),
    ),
  );
}

/** A paragraph. Children are React nodes, so any user-supplied string in them is escaped. */
export function p(...children: ReactNode[]): ReactElement {
  return h(Text, { style: styles.text }, ...children);
}

/** "Hi <name>," — the first line of every mail. */
export function greeting(name: string): ReactElement {
  return p(`Hi ${name},`);
}

/** A call-to-action button with its label. */
export function button(href: string, label: string): ReactElement {
  return h(Section, { style: { margin: '8px 0 20px' } }, h(Button, { href, style: styles.button }, label));
}

/** An inline link. */
export function link(href: string, label: string): ReactElement {
  return h(Link, { href, style: { color: '#1d4ed8' } }, label);
}

/** Monospace text for addresses and ids. */
export function code(value: string): ReactElement {
  return h('code', { style: styles.code }, value);
}

/** Bold text. */
export function strong(value: string): ReactElement {
  return h('strong', null, value);
}

/**
 * maildev: the local mail catcher. An SMTP server that keeps every mail it receives in memory and
 * shows them in a web page; its REST API lets tests count and read what was sent.
 */
import path from 'node:path';
import { rootDir } from '../../lib/paths.ts';
import { httpOk, startProcess, type LineSink, type ManagedProcess } from '../../lib/process.ts';

export interface StartMaildevOptions {
  smtpPort: number;
  webPort: number;
  /** Interface both listen on (default 127.0.0.1: nothing outside this machine sees the mail). */
  host?: string;
  sink?: LineSink;
  /** Name in the combined log (default 'maildev'). */
  name?: string;
}

export interface RunningMaildev {
  /** For SMTP_URL: `smtp://host:port`. */
  smtpUrl: string;
  smtpPort: number;
  /** The web page that shows the caught mail, and the base of its REST API. */
  webUrl: string;
  api: MaildevClient;
  process: ManagedProcess;
  stop(): Promise<void>;
}

/** The maildev executable of the dev dependency (maildev 3 ships it as dist/bin/maildev.js). */
export const maildevBin = path.join(rootDir, 'node_modules', 'maildev', 'dist', 'bin', 'maildev.js');

/** Starts maildev on the given ports; resolves once its web API answers. */
export async function startMaildev(opts: StartMaildevOptions): Promise<RunningMaildev> {
  const host = opts.host ?? '127.0.0.1';
  const webUrl = `http://${host}:${opts.webPort}`;
  const proc = await startProcess({
    name: opts.name ?? 'maildev',
    command: process.execPath,
    args: [maildevBin, '--smtp', String(opts.smtpPort), '--ip', host, '--web', String(opts.webPort), '--web-ip', host],
    cwd: rootDir,
    sink: opts.sink,
    readyTimeoutMs: 30_000,
    ready: () => httpOk(`${webUrl}/api/healthz`),
  });
  return {
    smtpUrl: `smtp://${host}:${opts.smtpPort}`,
    smtpPort: opts.smtpPort,
    webUrl,
    api: createMaildevClient(webUrl),
    process: proc,
    stop: () => proc.stop(),
  };
}

/** A mail as maildev's API returns it (the fields tests read). */
export interface CaughtMail {
  id: string;
  subject: string;
  from: Array<{ address: string; name: string }>;
  to: Array<{ address: string; name: string }>;
  html?: string;
  text?: string;
  headers: Record<string, string | string[]>;
}

export interface MaildevClient {
  /** Every mail caught so far, oldest first. */
  list(): Promise<CaughtMail[]>;
  /** Forgets every caught mail. */
  deleteAll(): Promise<void>;
}

/** A client for maildev 3's REST API under `<webUrl>/api`. */
export function createMaildevClient(webUrl: string): MaildevClient {
  const api = `${webUrl.replace(/\/+$/, '')}/api`;
  async function call(method: string, route: string): Promise<unknown> {
    const res = await fetch(`${api}${route}`, { method, signal: AbortSignal.timeout(10_000) });
    if (!res.ok) throw new Error(`maildev ${method} ${route}: HTTP ${res.status} ${await res.text()}`);
    return res.json();
  }
  return {
    async list() {
      return (await call('GET', '/email')) as CaughtMail[];
    },
    async deleteAll() {
      await call('DELETE', '/email/all');
    },
  };
}

/**
 * The live connections of the web app: a terminal into the customer's own server and a chat with
 * their assistant, each a WebSocket on the api's HTTP server (`/ws/terminal`, `/ws/chat`).
 *
 * Who: the session cookie decides the user, and a user reaches only the live server recorded for
 * them (invariant 5, docs/invariants.md); the Origin must be the app's own, so another site cannot open a socket
 * with the customer's cookie. A socket belongs to its session: it closes the moment the session ends
 * (sign-out, password reset, expiry; api/live-sessions.ts), and a terminal opens only on a session
 * whose password was typed recently. How: SSH with the customer's key and the pinned host key (invariant 7, docs/invariants.md);
 * the terminal is an interactive shell with a PTY, the chat goes through an SSH tunnel to the
 * assistant's gateway on the server (never exposed), authenticated with the customer's gateway token.
 *
 * Protocol. Terminal: binary frames carry terminal bytes both ways; text frames are JSON control
 * messages — from the browser `{type:"resize",cols,rows}`, to it `{type:"ready"}`, `{type:"error",message}`
 * and `{type:"exit",code}`. Chat: the browser sends `{type:"ask",id,messages:[{role,content}]}`,
 * and gets `{type:"answer",id,content}` or `{type:"error",id,message}`.
 */
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex, Readable } from 'node:stream';
import http from 'node:http';
import type { Client, ClientChannel } from 'ssh2';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { z } from 'zod';
import type { Db } from '../db/database.ts';
import { findLiveServer } from '../db/repositories/servers.ts';
import { ensureCustomerKey, ensureGatewayToken } from '../activities/cloud/keys.ts';
import { connectPinned, forwardOut } from '../activities/cloud/ssh.ts';
import { serverLayout } from '../activities/cloud/user-data.ts';
import type { MasterKeys } from '../lib/secrets.ts';
import type { Logger } from '../lib/log.ts';
import { recentlyAuthenticated, sessionOfRequest, type SessionPolicy } from './auth/sessions.ts';
import { findLiveSessionById, touchSession } from '../db/repositories/sessions.ts';
import { maxSocketsPerUser, sessionEndedCloseCode, type LiveSessionRegistry, type LiveSocketEntry } from './live-sessions.ts';
import type { Session, User } from '../db/database.ts';
import { errorMessage } from '../lib/errors.ts';

export interface LiveDeps {
  db: Db;
  masterKeys: MasterKeys;
  log: Logger;
  /** The app's own origin is the only one allowed to open a socket. */
  appUrl: string;
  /** Where the assistant's gateway listens as seen from the server: 127.0.0.1 (production) or the server's address (the local cloud). */
  gatewayHost: 'loopback' | 'server-address';
  /** sshd port of customer servers (22). */
  sshPort?: number;
  /** Called when a customer opens the terminal or asks the assistant: it counts as use of the server. */
  onActivity?: (userId: string, source: 'terminal' | 'chat') => void;
  /** How long an assistant answer may take (default 120 s). */
  answerTimeoutMs?: number;
  /** Idle and absolute session limits, and how recent a password a terminal needs. */
  sessionPolicy: SessionPolicy;
  /** This process's open sockets by session, so an ended session closes them. */
  registry: LiveSessionRegistry;
}

/** Why a live connection cannot be made, in words for the customer. */
export class LiveRefusal extends Error {}

const MAX_MESSAGE_BYTES = 256 * 1024;
const ROW_LIMIT = 500, COL_LIMIT = 1000;
/** Keystrokes kept while the shell is being opened; more than a paste's worth is refused. */
export const maxEarlyInputBytes = 64 * 1024;
/** The longest assistant answer read from a customer's server (its gateway could send without end). */
export const maxAnswerBytes = 1024 * 1024;
/** Stop reading a customer's shell while this much waits for the browser; resume below a quarter. */
const BACKLOG_PAUSE_BYTES = 1024 * 1024;

const resizeMessage = z.object({ type: z.literal('resize'), cols: z.number().int().min(1).max(COL_LIMIT), rows: z.number().int().min(1).max(ROW_LIMIT) });
const askMessage = z.object({
  type: z.literal('ask'),
  id: z.string().min(1).max(64),
  messages: z.array(z.object({ role: z.enum(['user', 'assistant']), content: z.string().min(1).max(32_000) })).min(1).max(50),
});

/** Serves `/ws/terminal` and `/ws/chat` on `server`; every other upgrade is refused. */
export function attachLive(server: Server, deps: LiveDeps): { close(): void } {
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE_BYTES });
  const appOrigin = new URL(deps.appUrl).origin;

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    void (async () => {
      const path = new URL(req.url ?? '/', appOrigin).pathname;
      const kind = path === '/ws/terminal' ? 'terminal' : path === '/ws/chat' ? 'chat' : null;
      if (kind === null) return refuse(socket, 404);
      if (req.headers.origin !== appOrigin) return refuse(socket, 403);
      const signedIn = await sessionOfRequest(deps.db, req.headers.cookie ?? null, deps.sessionPolicy).catch(() => null);
      if (!signedIn) return refuse(socket, 401);
      if (deps.registry.count(signedIn.user.id) >= maxSocketsPerUser) return refuse(socket, 429);
      const { user } = signedIn;
      wss.handleUpgrade(req, socket, head, (ws) => {
        if (!holdSession(ws, signedIn, kind)) return;
        if (kind === 'terminal' && !recentlyAuthenticated(signedIn.session, deps.sessionPolicy)) {
          sendJson(ws, { type: 'error', message: 'Confirm your password to open a terminal: reload this page.' });
          ws.close(4403, 'password confirmation needed');
          return;
        }
        deps.onActivity?.(user.id, kind);
        if (kind === 'terminal') void serveTerminal(ws, user.id);
        else serveChat(ws, user.id);
      });
    })().catch((err: unknown) => {
      deps.log.error({ err: errorMessage(err) }, 'live connection upgrade failed');
      refuse(socket, 500);
    });
  });

  /**
   * Ties a socket to its session: registered so that ending the session closes it, re-checked when
   * the session is due to expire, and its messages count as activity (the idle clock restarts).
   * False (and the socket closed) when the user already has too many open.
   */
  function holdSession(ws: WebSocket, signedIn: { session: Session; user: User }, kind: LiveSocketEntry['kind']): boolean {
    const policy = deps.sessionPolicy;
    let session = signedIn.session;
    const close = (reason: string) => {
      sendJson(ws, { type: 'error', id: null, message: reason });
      ws.close(sessionEndedCloseCode, 'session ended');
    };
    const held = deps.registry.add({ userId: signedIn.user.id, sessionId: session.id, kind, close });
    if (!held) {
      ws.close(1008, 'too many open connections');
      return false;
    }
    let timer: NodeJS.Timeout | undefined;
    const watch = () => {
      const due = Math.min(session.expiresAt.getTime(), session.lastSeenAt.getTime() + policy.idleMs);
      timer = setTimeout(() => {
        findLiveSessionById(deps.db, session.id, new Date(), policy.idleMs).then((live) => {
          if (ws.readyState !== ws.OPEN) return;
          if (!live) return close('Your session expired; sign in again.');
          session = live;
          watch();
        }, () => watch());
      }, Math.min(2 ** 31 - 1, Math.max(0, due - Date.now()) + 50));
    };
    watch();
    ws.on('message', () => {
      const now = new Date();
      if (now.getTime() - session.lastSeenAt.getTime() <= Math.min(60_000, policy.idleMs / 4)) return;
      session = { ...session, lastSeenAt: now };
      touchSession(deps.db, session.id, now).catch(() => {});
    });
    ws.on('close', () => {
      clearTimeout(timer);
      held.remove();
    });
    return true;
  }

  /** SSH into the user's own live, running server. */
  async function connectOwnServer(userId: string): Promise<{ client: Client; host: string }> {
    const row = await findLiveServer(deps.db, userId);
    if (!row) throw new LiveRefusal('You have no server yet.');
    if (row.status !== 'running' || !row.ipv4) throw new LiveRefusal('Your server is not running. Start it from the dashboard, then try again.');
    if (!row.hostKeyFingerprint) throw new LiveRefusal('Your server is still being set up.');
    const key = await ensureCustomerKey(deps.db, deps.masterKeys, userId);
    const host = row.ipv4.replace(/\/32$/, '');
    try {
      const client = await connectPinned({ host, port: deps.sshPort ?? 22, username: serverLayout.user, privateKey: key.privateKey, hostKeyFingerprint: row.hostKeyFingerprint, readyTimeoutMs: 10_000 });
      return { client, host };
    } catch (err) {
      deps.log.warn({ userId, err: errorMessage(err) }, 'live connection: SSH to the server failed');
      throw new LiveRefusal('Your server did not answer. If it was just started, give it a minute and try again.');
    }
  }

  async function serveTerminal(ws: WebSocket, userId: string): Promise<void> {
    let client: Client | undefined;
    let shell: ClientChannel | undefined;
    let size = { cols: 80, rows: 24 };
    const early: Buffer[] = [];
    let earlyBytes = 0;
    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (isBinary) {
        const bytes = toBuffer(data);
        if (shell) shell.write(bytes);
        else if ((earlyBytes += bytes.length) <= maxEarlyInputBytes) early.push(bytes);
        else {
          early.length = 0;
          sendJson(ws, { type: 'error', message: 'Too much was typed before the terminal was ready; connect again.' });
          ws.close(1009, 'too much input before the shell was ready');
        }
        return;
      }
      const parsed = resizeMessage.safeParse(parseJson(data));
      if (!parsed.success) return sendJson(ws, { type: 'error', message: 'The terminal sent a message this server does not understand.' });
      size = { cols: parsed.data.cols, rows: parsed.data.rows };
      shell?.setWindow(size.rows, size.cols, 0, 0);
    });
    ws.on('close', () => {
      shell?.close();
      client?.end();
    });
    try {
      ({ client } = await connectOwnServer(userId));
      if (ws.readyState !== ws.OPEN) {
        client.end();
        return;
      }
      client.on('error', () => ws.close(1011, 'connection to the server lost'));
      shell = await new Promise<ClientChannel>((resolve, reject) => {
        client!.shell({ term: 'xterm-256color', cols: size.cols, rows: size.rows }, (err, channel) => {
          if (err) return reject(err);
          // At once: an exit read together with the confirmation is emitted before an await resumes.
          channel.once('exit', (code: number | null) => sendJson(ws, { type: 'exit', code }));
          resolve(channel);
        });
      });
      sendJson(ws, { type: 'ready' });
      for (const bytes of early.splice(0)) shell.write(bytes);
      forwardToSocket(shell, ws);
      forwardToSocket(shell.stderr, ws);
      shell.on('close', () => {
        ws.close(1000, 'shell closed');
        client?.end();
      });
    } catch (err) {
      client?.end();
      const message = err instanceof LiveRefusal ? err.message : 'The terminal could not be opened; please try again in a minute.';
      if (!(err instanceof LiveRefusal)) deps.log.error({ userId, err: errorMessage(err) }, 'terminal failed');
      sendJson(ws, { type: 'error', message });
      ws.close(1011, 'terminal unavailable');
    }
  }

  function serveChat(ws: WebSocket, userId: string): void {
    // One SSH connection per chat socket, made on the first question and kept for the next ones.
    let connection: Promise<{ client: Client; host: string }> | undefined;
    const open = () => {
      if (!connection) {
        const attempt = connectOwnServer(userId);
        connection = attempt;
        attempt.catch(() => { if (connection === attempt) connection = undefined; });
      }
      return connection;
    };
    ws.on('message', (data: RawData, isBinary: boolean) => {
      const parsed = isBinary ? null : askMessage.safeParse(parseJson(data));
      if (!parsed?.success) return sendJson(ws, { type: 'error', id: null, message: 'That message could not be read; reload the page and try again.' });
      const { id, messages } = parsed.data;
      deps.onActivity?.(userId, 'chat');
      void (async () => {
        try {
          const { client, host } = await open();
          const token = await ensureGatewayToken(deps.db, deps.masterKeys, userId);
          const content = await askAssistant(client, deps.gatewayHost === 'server-address' ? host : '127.0.0.1', token, messages, deps.answerTimeoutMs ?? 120_000);
          sendJson(ws, { type: 'answer', id, content });
        } catch (err) {
          const message = err instanceof LiveRefusal ? err.message : 'Your assistant did not answer; please try again in a minute.';
          if (!(err instanceof LiveRefusal)) deps.log.warn({ userId, err: errorMessage(err) }, 'chat: the assistant did not answer');
          // A broken connection is made again on the next question.
          if (!(err instanceof LiveRefusal)) { void connection?.then(({ client }) => client.end(), () => {}); connection = undefined; }
          sendJson(ws, { type: 'error', id, message });
        }
      })();
    });
    ws.on('close', () => { void connection?.then(({ client }) => client.end(), () => {}); });
  }

  return { close: () => wss.close() };
}

/**
 * Sends what a customer's server writes to the browser, reading no more than the browser takes:
 * past {@link BACKLOG_PAUSE_BYTES} waiting in the socket, the stream is paused (SSH's window then
 * stops the server), so a shell that writes without end costs a bounded amount of memory here.
 */
function forwardToSocket(source: Readable, ws: WebSocket): void {
  let paused = false;
  source.on('data', (chunk: Buffer) => {
    if (ws.readyState !== ws.OPEN) return;
    ws.send(chunk, { binary: true });
    if (!paused && ws.bufferedAmount > BACKLOG_PAUSE_BYTES) {
      paused = true;
      source.pause();
      const resume = setInterval(() => {
        if (ws.bufferedAmount < BACKLOG_PAUSE_BYTES / 4 || ws.readyState !== ws.OPEN) {
          clearInterval(resume);
          paused = false;
          if (ws.readyState === ws.OPEN) source.resume();
        }
      }, 20);
    }
  });
}

/** POST /v1/chat/completions to the gateway through an SSH tunnel; returns the answer's text. */
async function askAssistant(client: Client, gatewayHost: string, token: string, messages: { role: string; content: string }[], timeoutMs: number): Promise<string> {
  const tunnel = await forwardOut(client, gatewayHost, serverLayout.gatewayPort);
  const body = JSON.stringify({ model: 'openclaw', messages });
  return new Promise<string>((resolve, reject) => {
    const req = http.request({
      method: 'POST', path: '/v1/chat/completions', host: 'assistant', createConnection: () => tunnel as never, timeout: timeoutMs,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), authorization: `Bearer ${token}` },
    }, (res) => {
      const chunks: Buffer[] = [];
      let received = 0;
      res.on('data', (c: Buffer) => {
        received += c.length;
        if (received > maxAnswerBytes) req.destroy(new Error(`the answer is longer than ${maxAnswerBytes} bytes`));
        else chunks.push(c);
      });
      res.on('end', () => {
        tunnel.destroy();
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown;
        try { parsed = JSON.parse(text); } catch { parsed = undefined; }
        const answer = (parsed as { choices?: { message?: { content?: unknown } }[] } | undefined)?.choices?.[0]?.message?.content;
        if (res.statusCode === 200 && typeof answer === 'string') return resolve(answer);
        reject(new Error(`gateway answered ${res.statusCode}: ${text.slice(0, 200)}`));
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)));
    req.on('error', (err) => { tunnel.destroy(); reject(err); });
    req.end(body);
  });
}

function refuse(socket: Duplex, status: number): void {
  socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

function sendJson(ws: WebSocket, message: object): void {
  if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(message));
}

function parseJson(data: RawData): unknown {
  try {
    return JSON.parse(toBuffer(data).toString('utf8'));
  } catch {
    return undefined;
  }
}

function toBuffer(data: RawData): Buffer {
  return Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
}

/**
 * Live sockets (terminal, chat, browser) belong to a session: when the session ends — sign-out,
 * password reset, expiry — its sockets close at once, in every web process. Each process keeps a
 * registry of its open sockets; an ended session is announced to all processes through PostgreSQL
 * (NOTIFY on one channel), and each socket also re-checks its own session when it is due to expire.
 */
import pg from 'pg';
import { sql } from 'kysely';
import type { Db } from '../db/database.ts';
import type { Logger } from '../lib/log.ts';
import { errorMessage } from '../lib/errors.ts';

/** What ended: some sessions, or every session of a user. */
export interface SessionsEnded {
  sessionIds?: readonly string[];
  userId?: string;
  reason: 'signed-out' | 'password-reset' | 'expired';
}

export interface LiveSocketEntry {
  userId: string;
  sessionId: string;
  kind: 'terminal' | 'chat' | 'browser';
  /** Closes the socket, telling the page why. */
  close(reason: string): void;
}

/** One customer cannot hold more live sockets than this in one process (each may hold an SSH connection). */
export const maxSocketsPerUser = 8;

/** WebSocket close code for "your session ended" (4000–4999 are the application's own). */
export const sessionEndedCloseCode = 4401;

export interface LiveSessionRegistry {
  /** Registers a socket; null when the user already has {@link maxSocketsPerUser} open here. */
  add(entry: LiveSocketEntry): { remove(): void } | null;
  /** Closes the sockets of what ended; returns how many. */
  closeEnded(ended: SessionsEnded): number;
  /** Open sockets of a user (all users without one). */
  count(userId?: string): number;
}

export function createLiveSessionRegistry(): LiveSessionRegistry {
  const byUser = new Map<string, Set<LiveSocketEntry>>();
  return {
    add(entry) {
      const set = byUser.get(entry.userId) ?? new Set<LiveSocketEntry>();
      if (set.size >= maxSocketsPerUser) return null;
      set.add(entry);
      byUser.set(entry.userId, set);
      return {
        remove: () => {
          set.delete(entry);
          if (set.size === 0 && byUser.get(entry.userId) === set) byUser.delete(entry.userId);
        },
      };
    },
    closeEnded(ended) {
      const ids = new Set(ended.sessionIds ?? []);
      const candidates = ended.userId ? [...(byUser.get(ended.userId) ?? [])] : [...byUser.values()].flatMap((s) => [...s]);
      let closed = 0;
      for (const entry of candidates) {
        if (ended.userId === undefined && !ids.has(entry.sessionId)) continue;
        entry.close(ended.reason === 'expired' ? 'Your session expired; sign in again.' : 'You were signed out.');
        closed++;
      }
      return closed;
    },
    count(userId) {
      return userId ? byUser.get(userId)?.size ?? 0 : [...byUser.values()].reduce((n, s) => n + s.size, 0);
    },
  };
}

const channel = 'berth_sessions_ended';

export interface SessionEvents {
  /** Tells every web process (this one included) that sessions ended. */
  announce(ended: SessionsEnded): Promise<void>;
  close(): Promise<void>;
}

/**
 * Listens on PostgreSQL for ended sessions and hands each to `onEnded`; reconnects after a lost
 * connection (sockets re-check their sessions at expiry meanwhile, so nothing stays open for good).
 */
export function listenForEndedSessions(opts: { db: Db; databaseUrl: string; log: Logger; onEnded: (ended: SessionsEnded) => void }): SessionEvents {
  let client: pg.Client | undefined;
  let closed = false;
  let retry: NodeJS.Timeout | undefined;
  const connect = async () => {
    const c = new pg.Client({ connectionString: opts.databaseUrl });
    c.on('notification', (message) => {
      if (message.channel !== channel || !message.payload) return;
      try {
        opts.onEnded(JSON.parse(message.payload) as SessionsEnded);
      } catch (err) {
        opts.log.warn({ err: errorMessage(err) }, 'unreadable session announcement');
      }
    });
    const again = () => {
      if (closed || retry) return;
      retry = setTimeout(() => { retry = undefined; void connect(); }, 1000);
      retry.unref();
    };
    c.on('error', (err) => {
      opts.log.warn({ err: err.message }, 'session announcements: connection lost; reconnecting');
      again();
    });
    c.on('end', again);
    try {
      await c.connect();
      await c.query(`listen ${channel}`);
      client = c;
    } catch (err) {
      opts.log.warn({ err: errorMessage(err) }, 'session announcements: cannot listen yet; retrying');
      await c.end().catch(() => {});
      again();
    }
  };
  void connect();
  return {
    async announce(ended) {
      await sql`select pg_notify(${channel}, ${JSON.stringify(ended)})`.execute(opts.db);
    },
    async close() {
      closed = true;
      clearTimeout(retry);
      await client?.end().catch(() => {});
    },
  };
}

import type { ColumnType, Generated, Insertable, Selectable } from 'kysely';

/** A signed-in browser. Only a hash of the session token is stored, never the token itself. */
export interface SessionsTable {
  id: Generated<string>;
  userId: string;
  tokenHash: string;
  createdAt: ColumnType<Date, Date | undefined, never>;
  /** The absolute end of the session, however active it is. */
  expiresAt: Date;
  /** The last request made with it: the idle timeout counts from here. */
  lastSeenAt: ColumnType<Date, Date | undefined, Date>;
  /** When its password was last typed (sign-in or confirmation): sensitive actions need a recent one. */
  authenticatedAt: ColumnType<Date, Date | undefined, Date>;
}

export type Session = Selectable<SessionsTable>;
export type NewSession = Insertable<SessionsTable>;

import type { ColumnType, Generated, Insertable, Selectable } from 'kysely';

/** A signed-in browser. Only a hash of the session token is stored, never the token itself. */
export interface SessionsTable {
  id: Generated<string>;
  userId: string;
  tokenHash: string;
  createdAt: ColumnType<Date, Date | undefined, never>;
  expiresAt: Date;
  lastSeenAt: ColumnType<Date, Date | undefined, Date>;
}

export type Session = Selectable<SessionsTable>;
export type NewSession = Insertable<SessionsTable>;

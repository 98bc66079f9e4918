import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely';

/** A person who can sign in. Email is unique regardless of case (unique index on lower(email)). */
export interface UsersTable {
  id: Generated<string>;
  email: string;
  passwordHash: string;
  name: string;
  emailVerifiedAt: ColumnType<Date | null, Date | null | undefined, Date | null>;
  createdAt: ColumnType<Date, Date | undefined, never>;
  updatedAt: ColumnType<Date, Date | undefined, Date>;
}

export type User = Selectable<UsersTable>;
export type NewUser = Insertable<UsersTable>;
export type UserUpdate = Updateable<UsersTable>;

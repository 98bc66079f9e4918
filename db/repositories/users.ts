import { sql } from 'kysely';
import type { Db, User } from '../database.ts';
import { isUniqueViolation } from '../errors.ts';

/** Someone already registered this email, in any letter case. */
export class EmailTakenError extends Error {
  readonly type = 'EmailTaken';
  constructor(email: string) {
    super(`an account with email ${email} already exists`);
    this.name = 'EmailTakenError';
  }
}

/**
 * Creates a user. The email keeps the case it was typed in; uniqueness ignores case
 * (index users_email_lower_key). Throws EmailTakenError if the address is taken.
 */
export async function createUser(db: Db, input: { email: string; passwordHash: string; name: string }): Promise<User> {
  const email = input.email.trim();
  try {
    return await db.insertInto('users').values({ ...input, email }).returningAll().executeTakeFirstOrThrow();
  } catch (err) {
    if (isUniqueViolation(err, 'users_email_lower_key')) throw new EmailTakenError(email);
    throw err;
  }
}

/** Finds a user by email, whatever its letter case. */
export async function findUserByEmail(db: Db, email: string): Promise<User | undefined> {
  return db
    .selectFrom('users')
    .selectAll()
    .where(sql<string>`lower(email)`, '=', email.trim().toLowerCase())
    .executeTakeFirst();
}

export async function findUserById(db: Db, id: string): Promise<User | undefined> {
  return db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
}

/** Marks the email verified (first verification time wins). */
export async function markEmailVerified(db: Db, id: string, at: Date = new Date()): Promise<void> {
  await db
    .updateTable('users')
    .set({ emailVerifiedAt: sql<Date>`coalesce(email_verified_at, ${at})`, updatedAt: sql<Date>`now()` })
    .where('id', '=', id)
    .execute();
}

export async function setPasswordHash(db: Db, id: string, passwordHash: string): Promise<void> {
  await db.updateTable('users').set({ passwordHash, updatedAt: sql<Date>`now()` }).where('id', '=', id).execute();
}

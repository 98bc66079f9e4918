import { sql } from 'kysely';
import type { Db, EncryptedSecret } from '../database.ts';

/** Stores (or replaces) the ciphertext of one secret. Encrypting is the caller's job; this never sees plaintext. */
export async function putEncryptedSecret(
  db: Db,
  input: { owner: string; purpose: string; ciphertext: Buffer; keyId: string },
): Promise<EncryptedSecret> {
  return db
    .insertInto('encryptedSecrets')
    .values(input)
    .onConflict((oc) => oc.columns(['owner', 'purpose']).doUpdateSet({ ciphertext: input.ciphertext, keyId: input.keyId, updatedAt: sql<Date>`now()` }))
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function getEncryptedSecret(db: Db, owner: string, purpose: string): Promise<EncryptedSecret | undefined> {
  return db.selectFrom('encryptedSecrets').selectAll().where('owner', '=', owner).where('purpose', '=', purpose).executeTakeFirst();
}

export async function deleteEncryptedSecret(db: Db, owner: string, purpose: string): Promise<void> {
  await db.deleteFrom('encryptedSecrets').where('owner', '=', owner).where('purpose', '=', purpose).execute();
}

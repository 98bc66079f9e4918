import type { ColumnType, Generated, Insertable, Selectable } from 'kysely';

/**
 * A secret encrypted at rest (AES-256-GCM envelope): a customer's model API key, SSH private key,
 * gateway token. `keyId` names the master key that wrapped it, for rotation. One per owner and purpose.
 */
export interface EncryptedSecretsTable {
  id: Generated<string>;
  /** The user the secret belongs to. */
  owner: string;
  purpose: string;
  ciphertext: Buffer;
  keyId: string;
  createdAt: ColumnType<Date, Date | undefined, never>;
  updatedAt: ColumnType<Date, Date | undefined, Date>;
}

export type EncryptedSecret = Selectable<EncryptedSecretsTable>;
export type NewEncryptedSecret = Insertable<EncryptedSecretsTable>;

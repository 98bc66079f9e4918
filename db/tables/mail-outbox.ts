import type { ColumnType, Generated, Selectable } from 'kysely';

/** An account mail waiting to be sent by the web process's sender; the payload is sealed (lib/secrets.ts). */
export interface MailOutboxTable {
  id: Generated<string>;
  payload: Buffer;
  keyId: string;
  attempts: ColumnType<number, number | undefined, number>;
  notBefore: ColumnType<Date, Date | undefined, Date>;
  createdAt: ColumnType<Date, Date | undefined, never>;
}

export type MailOutboxEntry = Selectable<MailOutboxTable>;

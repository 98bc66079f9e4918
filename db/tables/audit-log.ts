import type { ColumnType, Generated, Insertable, JSONColumnType, Selectable } from 'kysely';

/** Who did what to what, and when: operator approvals, deletions, restores. Append-only. */
export interface AuditLogTable {
  id: Generated<number>;
  /** 'user:<id>', 'operator:<name>', 'workflow:<id>', 'system'. */
  actor: string;
  action: string;
  /** What was acted on, e.g. 'customer:<userId>', 'server:<id>'. */
  subject: string;
  at: ColumnType<Date, Date | undefined, never>;
  details: JSONColumnType<Record<string, unknown>, string | undefined, never>;
  /** Set by writers that may retry (activities): the entry is written once per key. */
  idempotencyKey: ColumnType<string | null, string | null | undefined, never>;
}

export type AuditLogEntry = Selectable<AuditLogTable>;
export type NewAuditLogEntry = Insertable<AuditLogTable>;

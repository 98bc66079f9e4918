import type { AuditLogEntry, Db } from '../database.ts';

/** Appends one audit entry and returns it. Never pass secrets in `details`. */
export async function appendAudit(
  db: Db,
  entry: { actor: string; action: string; subject: string; details?: Record<string, unknown> },
): Promise<AuditLogEntry> {
  return db
    .insertInto('auditLog')
    .values({ actor: entry.actor, action: entry.action, subject: entry.subject, details: JSON.stringify(entry.details ?? {}) })
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** The newest entries about a subject first. */
export async function listAuditForSubject(db: Db, subject: string, limit = 50): Promise<AuditLogEntry[]> {
  return db.selectFrom('auditLog').selectAll().where('subject', '=', subject).orderBy('at', 'desc').orderBy('id', 'desc').limit(limit).execute();
}

import type { ColumnType, Selectable } from 'kysely';

/**
 * Which cloud project (a Hetzner project: one token, one server limit, one request budget) holds, or
 * will hold, a customer's server. Written before the server is created; changed only when that
 * project refused the server for lack of room.
 */
export interface CloudAssignmentsTable {
  userId: string;
  /** The project's configured name (HCLOUD_PROJECTS). */
  project: string;
  assignedAt: ColumnType<Date, Date | undefined, Date>;
}

export type CloudAssignment = Selectable<CloudAssignmentsTable>;

import type { ColumnType, Generated, Insertable, JSONColumnType, Selectable, Updateable } from 'kysely';

/** Server statuses as the Hetzner Cloud API reports them. */
export const serverStatuses = ['initializing', 'starting', 'running', 'stopping', 'off', 'deleting', 'migrating', 'rebuilding', 'unknown'] as const;
export type ServerStatus = (typeof serverStatuses)[number];

/**
 * A customer's cloud server. At most one row per user has `deletedAt` null (partial unique index):
 * the database backs invariant 2 (docs/invariants.md), one live server per customer.
 */
export interface ServersTable {
  id: Generated<string>;
  userId: string;
  /** The provider's (Hetzner's) numeric server id. */
  providerId: number;
  name: string;
  labels: JSONColumnType<Record<string, string>>;
  ipv4: string | null;
  serverType: string;
  location: string;
  status: ServerStatus;
  /** SHA256 fingerprint of the SSH host key we injected through cloud-init and pin. */
  hostKeyFingerprint: string | null;
  createdAt: ColumnType<Date, Date | undefined, never>;
  deletedAt: Date | null;
}

export type Server = Selectable<ServersTable>;
export type NewServer = Insertable<ServersTable>;
export type ServerUpdate = Updateable<ServersTable>;

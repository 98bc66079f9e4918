import type { Migration, MigrationProvider } from 'kysely/migration';
import * as initial from './2026-11-26T00-00-00-initial.ts';
import * as lifecycleProjection from './2026-11-26T12-00-00-lifecycle-projection.ts';
import * as stripeEventAttention from './2026-11-30T00-00-00-stripe-event-attention.ts';
import * as cloudProjects from './2026-11-30T12-00-00-cloud-projects.ts';
import * as backupAttempts from './2026-11-30T18-00-00-backup-attempts.ts';
import * as sessionsReauth from './2026-12-01T00-00-00-sessions-reauth.ts';
import * as throttleAndMailOutbox from './2026-12-01T00-00-01-throttle-and-mail-outbox.ts';
import * as backupDataKeys from './2026-12-01T00-00-02-backup-data-keys.ts';

/**
 * Every migration, in order, listed by hand: no folder scanning, so a bundle or a typo cannot
 * silently drop one. Name = ISO date of writing; Kysely runs them in name order.
 */
export const migrations: Readonly<Record<string, Migration>> = {
  '2026-11-26T00-00-00-initial': initial,
  '2026-11-26T12-00-00-lifecycle-projection': lifecycleProjection,
  '2026-11-30T00-00-00-stripe-event-attention': stripeEventAttention,
  '2026-11-30T12-00-00-cloud-projects': cloudProjects,
  '2026-11-30T18-00-00-backup-attempts': backupAttempts,
  '2026-12-01T00-00-00-sessions-reauth': sessionsReauth,
  '2026-12-01T00-00-01-throttle-and-mail-outbox': throttleAndMailOutbox,
  '2026-12-01T00-00-02-backup-data-keys': backupDataKeys,
};

/** The Kysely MigrationProvider that returns exactly the list above. */
export const migrationProvider: MigrationProvider = {
  async getMigrations() {
    return { ...migrations };
  },
};

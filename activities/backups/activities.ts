import { createHash } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import { sql } from 'kysely';
import type { Db } from '../../db/database.ts';
import { findBackup } from '../../db/repositories/backups.ts';
import { findCustomer } from '../../db/repositories/customers.ts';
import { findServerByProviderId } from '../../db/repositories/servers.ts';
import { ErrorType } from '../../lib/errors.ts';
import type { Plans } from '../billing/plans.ts';
import type { ServerSshTarget } from '../cloud/provisioning.ts';
import { connectPinned } from '../cloud/ssh.ts';
import type { BackupActivities, BackupProgressReport, BackupReason, BackupRecord } from '../contracts.ts';
import { activityContext, heartbeat } from '../heartbeat.ts';
import type { BackupProgress, BackupService } from './service.ts';
import type { SshTarget } from './ssh.ts';

export interface BackupActivityDeps {
  db: Db;
  service: BackupService;
  plans: Plans;
  /** Address, login, key and pinned host key of the customer's server (activities/cloud). */
  sshTarget(customerId: string, serverId: string): Promise<ServerSshTarget>;
  /**
   * Sends a backup's progress to the workflow that runs it (the worker signals `backupProgress`).
   * Best effort: a failure must not fail the backup. Left out, progress is only heartbeated.
   */
  reportProgress?(workflowId: string, progress: BackupProgressReport): Promise<void>;
}

/** How often at most a running backup reports progress to its workflow (each report is a history event). */
export const workflowProgressEveryMs = 10_000;

/**
 * Forwards the backup service's progress to the workflow: the first report at once, then at most one
 * per `everyMs`. Reports are not awaited (the stream must not wait on Temporal) and failures are dropped.
 */
export function workflowProgressForwarder(report: (progress: BackupProgressReport) => Promise<void>,
  ids: { idempotencyKey: string; backupId: string }, everyMs = workflowProgressEveryMs, clock: () => number = Date.now) {
  let last: number | null = null;
  return (p: BackupProgress): void => {
    const now = clock();
    if (last !== null && now - last < everyMs) return;
    last = now;
    const progress: BackupProgressReport = { ...ids, phase: p.phase, bytesDone: p.bytesDone, bytesEstimate: p.bytesEstimate, at: new Date(now).toISOString() };
    Promise.resolve().then(() => report(progress)).catch(() => {});
  };
}

/** The id of the workflow that called the running activity, or null outside one (direct calls in tests). */
function callingWorkflowId(): string | null {
  return activityContext()?.info.workflowExecution?.workflowId ?? null;
}

/**
 * The backup service's SSH connector for servers Berth provisioned: they are pinned by the host-key
 * fingerprint Berth recorded at creation, which the target carries in `hostKey`.
 */
export function connectByFingerprint(target: SshTarget) {
  return connectPinned({ host: target.host, port: target.port, username: target.username,
    privateKey: String(target.privateKey), hostKeyFingerprint: target.hostKey });
}

/** A backup id that is the same on every retry of the same step (the workflow's idempotency key). */
export function backupIdFor(idempotencyKey: string): string {
  const h = createHash('sha256').update(idempotencyKey).digest('hex');
  // Shaped as a UUID (version nibble 5, RFC 4122 variant) because the backups table keys by uuid.
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${((parseInt(h[16]!, 16) & 3) | 8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

const reasonOf = (manifestReason: unknown): BackupReason =>
  (['daily', 'manual', 'before_restore', 'before_hibernate', 'before_plan_change', 'expiry', 'final'] as const).find((r) => r === manifestReason) ?? 'manual';

/** The lifecycle's backup activities (activities/contracts.ts) on top of the backup service. */
export function createBackupActivities(deps: BackupActivityDeps): BackupActivities {
  const { db, service } = deps;

  async function target(customerId: string, serverId: string): Promise<SshTarget> {
    const t = await deps.sshTarget(customerId, serverId);
    return { host: t.host, port: t.port, username: t.username, privateKey: t.privateKey, hostKey: t.hostKeyFingerprint };
  }

  return {
    async createBackup({ customerId, serverId, reason, idempotencyKey }) {
      const backupId = backupIdFor(idempotencyKey);
      const existing = await findBackup(db, backupId);
      if (existing?.status === 'completed' && existing.verifiedAt && existing.sha256 && existing.sizeBytes !== null) {
        return { backupId, createdAt: existing.createdAt.toISOString(), verifiedAt: existing.verifiedAt.toISOString(),
          sizeBytes: existing.sizeBytes, sha256: existing.sha256, reason };
      }
      const customer = await findCustomer(db, customerId);
      const retentionDays = deps.plans[customer?.plan ?? 'starter'].backupRetentionDays;
      const workflowId = callingWorkflowId();
      const reportProgress = deps.reportProgress;
      const toWorkflow = reportProgress && workflowId !== null
        ? workflowProgressForwarder((progress) => reportProgress(workflowId, progress), { idempotencyKey, backupId })
        : null;
      const result = await service.backup({
        userId: customerId,
        // The backup names the server it was made of: deleting that server later checks it (invariant 1, docs/invariants.md).
        serverId: (await findServerByProviderId(db, Number(serverId)))?.id ?? null,
        backupId,
        ssh: await target(customerId, serverId),
        incremental: reason === 'daily',
        expiresAt: new Date(Date.now() + retentionDays * 86_400_000),
        onProgress: (p) => {
          heartbeat(p);
          toWorkflow?.(p);
        },
        // A cancelled or timed-out attempt stops (heartbeats deliver that) and removes what it wrote.
        signal: activityContext()?.cancellationSignal,
      });
      const row = await findBackup(db, result.backupId);
      if (!row?.verifiedAt) throw ApplicationFailure.create({ message: `backup ${result.backupId} was not verified`, type: ErrorType.Transient });
      await db.updateTable('backups').set({ manifest: sql`manifest || ${JSON.stringify({ reason })}::jsonb` }).where('id', '=', row.id).execute();
      return { backupId: result.backupId, createdAt: row.createdAt.toISOString(), verifiedAt: row.verifiedAt.toISOString(),
        sizeBytes: result.sizeBytes, sha256: result.sha256, reason };
    },

    async restoreBackup({ customerId, serverId, backupId }) {
      const row = await findBackup(db, backupId);
      if (!row || row.userId !== customerId) throw ApplicationFailure.nonRetryable(`no backup ${backupId} of this customer`, ErrorType.NotFound);
      await service.restore({ backupId, ssh: await target(customerId, serverId), onProgress: (p) => heartbeat(p), signal: activityContext()?.cancellationSignal });
      return { restoredAt: new Date().toISOString() };
    },

    async latestVerifiedBackup({ customerId, excludingBackupIds = [] }): Promise<BackupRecord | null> {
      let query = db.selectFrom('backups').selectAll()
        .where('userId', '=', customerId).where('status', '=', 'completed').where('verifiedAt', 'is not', null)
        .orderBy('createdAt', 'desc').limit(1);
      if (excludingBackupIds.length > 0) query = query.where('id', 'not in', excludingBackupIds);
      const row = await query.executeTakeFirst();
      if (!row || !row.verifiedAt || !row.sha256 || row.sizeBytes === null) return null;
      return { backupId: row.id, createdAt: row.createdAt.toISOString(), verifiedAt: row.verifiedAt.toISOString(),
        sizeBytes: row.sizeBytes, sha256: row.sha256, reason: reasonOf((row.manifest as { reason?: unknown } | null)?.reason) };
    },

    async pruneExpiredBackups({ now }) {
      // Purged customers' retention is over: even their last verified backup goes.
      const purged = await db.selectFrom('customers').select('userId').where('stage', '=', 'purged').execute();
      const { deleted } = await service.prune({ now: new Date(now), retentionOverFor: purged.map((c) => c.userId) });
      return { deletedBackupIds: deleted };
    },
  };
}

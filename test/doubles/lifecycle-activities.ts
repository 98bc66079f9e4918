/**
 * In-memory doubles of the lifecycle's activity contracts (activities/contracts.ts). They keep a
 * tiny world (servers, backups, mails, audit, projection) with the real contracts' guarantees —
 * one server per customer label, backups idempotent by key, mails once per key, delete refused
 * without a verified backup — and record every call in order, so workflow tests assert exact steps.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type {
  AuditEntry,
  BackupProgressReport,
  BackupReason,
  BackupRecord,
  DeleteServerInput,
  LifecycleActivities,
  LifecycleProjection,
  SendMailInput,
  ServerSummary,
} from '../../activities/contracts.ts';
import { ErrorType } from '../../lib/errors.ts';

/** One recorded activity attempt. */
export interface RecordedCall {
  /** Activity name, e.g. `createBackup`. */
  name: string;
  /** A short readable form used in assertions, e.g. `createBackup final`. */
  step: string;
  input: unknown;
  failed: boolean;
  /** The workflow run that called it (tells the runs of a continued workflow apart). */
  runId?: string;
}

/** Knobs to make the doubles fail. */
export interface DoubleOptions {
  /** Server types for which ensureServer/changeServerType/wakeFromSnapshot throw CapacityUnavailable (out of stock, removed, deprecated). */
  unavailableServerTypes?: string[];
  /**
   * GB of disk per server type (default {@link serverTypeDisks}): as on Hetzner, a server keeps its
   * disk through type changes and neither it nor its snapshot fits a type with a smaller one
   * (changeServerType/wakeFromSnapshot throw ServerTypeUnfit, before touching anything).
   */
  disks?: Record<string, number>;
  /** Make createBackup fail: the next `times` attempts with this reason (any reason if omitted). */
  failBackups?: { times: number; reason?: BackupReason; nonRetryable?: boolean };
  /** Backup ids whose restore throws BackupCorrupt. */
  corruptBackupIds?: string[];
  /**
   * The server answers SSH with a host key other than the pinned one (non-retryable HostKeyMismatch):
   * `true` from creation on (ensureServer finds or creates the server, then its SSH check fails, as the
   * real one does), `'setupAssistant'` only from setup on (ensureServer's check passed).
   */
  hostKeyMismatch?: boolean | 'setupAssistant';
  /** Like the real createBackup's `reportProgress`: called with the calling workflow's id and each report. */
  reportBackupProgress?: (workflowId: string, progress: BackupProgressReport) => Promise<void>;
  /** createBackup waits for this before completing, so a test can look at the workflow mid-backup. */
  holdBackup?: () => Promise<void>;
  /** appendAudit waits for this (given the entry's action) before recording, e.g. to message a workflow mid-purge. */
  holdAudit?: (action: string) => Promise<void>;
}

/** Disks of the types the lifecycle's plans name (Hetzner's catalogue), in GB. */
export const serverTypeDisks: Record<string, number> = {
  cx23: 40, cpx12: 40, cax11: 40, cx33: 80, cpx22: 80, ccx13: 80, cx43: 160, cpx32: 160, ccx23: 160, cx53: 320, cpx52: 480,
};

/** Names of bookkeeping activities that most assertions leave out. */
export const bookkeeping = ['writeProjection', 'markEventsProcessed'];

export interface LifecycleDoubles {
  activities: LifecycleActivities;
  calls: RecordedCall[];
  /** The readable steps, without bookkeeping calls (projection, processed events) unless asked. */
  steps(options?: { includeBookkeeping?: boolean }): string[];
  servers: Map<string, ServerSummary & { customerId: string; power: 'running' | 'stopped'; label: string; diskGb: number }>;
  snapshots: Map<string, { customerId: string; fromServerId: string; diskGb: number }>;
  backups: BackupRecord[];
  mails: SendMailInput[];
  audit: AuditEntry[];
  projections: LifecycleProjection[];
  processedEventIds: string[];
  options: DoubleOptions;
}

export function createLifecycleDoubles(options: DoubleOptions = {}): LifecycleDoubles {
  const calls: RecordedCall[] = [];
  const servers: LifecycleDoubles['servers'] = new Map();
  const snapshots: LifecycleDoubles['snapshots'] = new Map();
  const backups: BackupRecord[] = [];
  const backupServer = new Map<string, string>();
  const backupKeys = new Map<string, BackupRecord>();
  const mails: SendMailInput[] = [];
  const mailKeys = new Set<string>();
  const audit: AuditEntry[] = [];
  const projections: LifecycleProjection[] = [];
  const processedEventIds: string[] = [];
  let nextId = 1;
  const id = (prefix: string): string => `${prefix}-${nextId++}`;
  const now = (): string => new Date().toISOString();

  /** Records the attempt, runs it, marks it failed if it throws. */
  const record = async <T>(name: string, step: string, input: unknown, run: () => T | Promise<T>): Promise<T> => {
    const call: RecordedCall = { name, step, input, failed: false, runId: Context.current().info.workflowExecution?.runId };
    calls.push(call);
    try {
      return await run();
    } catch (err) {
      call.failed = true;
      call.step = `${step} ✗`;
      throw err;
    }
  };
  const capacity = (serverType: string): void => {
    if (options.unavailableServerTypes?.includes(serverType)) {
      throw ApplicationFailure.create({ message: `server type ${serverType} unavailable`, type: ErrorType.CapacityUnavailable });
    }
  };
  const serverOf = (serverId: string) => {
    const server = servers.get(serverId);
    if (!server) throw ApplicationFailure.nonRetryable(`server ${serverId} not found`, ErrorType.NotFound);
    return server;
  };
  const diskOf = (serverType: string): number => (options.disks ?? serverTypeDisks)[serverType] ?? 40;
  const fits = (serverType: string, what: string, diskGb: number): void => {
    if (diskOf(serverType) < diskGb) {
      throw ApplicationFailure.nonRetryable(`${what} cannot take server type ${serverType}: its ${diskGb} GB disk is bigger`, ErrorType.ServerTypeUnfit);
    }
  };
  const createServer = (customerId: string, label: string, serverType: string, location: string, diskGb = diskOf(serverType)): ServerSummary => {
    const serverId = id('srv');
    const summary: ServerSummary = { serverId, serverType, location, ipv4: `127.0.0.${nextId}`, createdAt: now() };
    servers.set(serverId, { ...summary, customerId, label, power: 'running', diskGb });
    return summary;
  };
  const hostKey = (server: ServerSummary, where: 'ensureServer' | 'setupAssistant'): void => {
    const mismatch = options.hostKeyMismatch;
    if (mismatch === true || mismatch === where) {
      throw ApplicationFailure.nonRetryable(`${server.ipv4}:22 presented host key SHA256:impostor, not the pinned SHA256:berth`, ErrorType.HostKeyMismatch);
    }
  };
  const summaryOf = ({ serverId, serverType, location, ipv4, createdAt }: ServerSummary): ServerSummary => ({ serverId, serverType, location, ipv4, createdAt });

  const activities: LifecycleActivities = {
    ensureServer: (input) => record('ensureServer', `ensureServer ${input.serverType}@${input.location}`, input, () => {
      const label = input.labels['berth-customer'] ?? input.customerId;
      const existing = [...servers.values()].find((s) => s.label === label);
      if (existing) {
        hostKey(existing, 'ensureServer');
        return summaryOf(existing);
      }
      capacity(input.serverType);
      // Like the real one: the server is created, then waiting for SSH with the pinned key fails.
      const created = createServer(input.customerId, label, input.serverType, input.location);
      hostKey(created, 'ensureServer');
      return created;
    }),
    setupAssistant: (input) => record('setupAssistant', 'setupAssistant', input, () => {
      hostKey(serverOf(input.serverId), 'setupAssistant');
      return { assistantVersion: 'test-1.0.0' };
    }),
    applySettings: (input) => record('applySettings', 'applySettings', input, () => {
      serverOf(input.serverId);
    }),
    powerOn: (input) => record('powerOn', 'powerOn', input, () => {
      serverOf(input.serverId).power = 'running';
    }),
    powerOff: (input) => record('powerOff', 'powerOff', input, () => {
      serverOf(input.serverId).power = 'stopped';
    }),
    hibernate: (input) => record('hibernate', 'hibernate', input, () => {
      const server = serverOf(input.serverId);
      // Hibernation deletes the server: the real activity re-checks invariant 1 (docs/invariants.md), so does the double.
      if (backupServer.get(input.verifiedBackupId) !== input.serverId) {
        throw ApplicationFailure.nonRetryable('no verified backup of this server', ErrorType.NoVerifiedBackup);
      }
      const snapshotId = id('snap');
      snapshots.set(snapshotId, { customerId: input.customerId, fromServerId: server.serverId, diskGb: server.diskGb });
      servers.delete(server.serverId);
      return { snapshotId };
    }),
    wakeFromSnapshot: (input) => record('wakeFromSnapshot', `wakeFromSnapshot ${input.serverType}@${input.location}`, input, () => {
      const snapshot = snapshots.get(input.snapshotId);
      if (!snapshot) throw ApplicationFailure.nonRetryable('no such snapshot', ErrorType.NotFound);
      const existing = [...servers.values()].find((s) => s.label === input.customerId);
      if (!existing) {
        capacity(input.serverType);
        fits(input.serverType, `snapshot ${input.snapshotId}`, snapshot.diskGb);
      }
      const summary = existing ? summaryOf(existing) : createServer(input.customerId, input.customerId, input.serverType, input.location, snapshot.diskGb);
      snapshots.delete(input.snapshotId);
      return summary;
    }),
    changeServerType: (input) => record('changeServerType', `changeServerType ${input.serverType}`, input, () => {
      const server = serverOf(input.serverId);
      capacity(input.serverType);
      fits(input.serverType, `server ${input.serverId}`, server.diskGb);
      // Like the real one: the disk grows to the type's, and the server runs again afterwards.
      server.serverType = input.serverType;
      server.diskGb = Math.max(server.diskGb, diskOf(input.serverType));
      server.power = 'running';
      return summaryOf(server);
    }),
    deleteServer: (input: DeleteServerInput) => record('deleteServer', 'verifiedBackupId' in input ? 'deleteServer (verified backup)' : 'deleteServer (operator override)', input, () => {
      if (!servers.has(input.serverId)) return;
      if ('verifiedBackupId' in input) {
        // The real activity re-checks invariant 1 (docs/invariants.md); so does the double.
        if (backupServer.get(input.verifiedBackupId) !== input.serverId) {
          throw ApplicationFailure.nonRetryable('no verified backup of this server', ErrorType.NoVerifiedBackup);
        }
      } else if (input.override.reason.trim().length === 0) {
        throw ApplicationFailure.nonRetryable('override without reason', ErrorType.InvalidInput);
      }
      servers.delete(input.serverId);
    }),
    createBackup: (input) => record('createBackup', `createBackup ${input.reason}`, input, async () => {
      const done = backupKeys.get(input.idempotencyKey);
      if (done) return done;
      const fail = options.failBackups;
      if (fail && fail.times > 0 && (fail.reason === undefined || fail.reason === input.reason)) {
        fail.times -= 1;
        const message = `backup upload failed verification (${input.reason})`;
        throw fail.nonRetryable ? ApplicationFailure.nonRetryable(message, ErrorType.BackupCorrupt) : ApplicationFailure.create({ message, type: ErrorType.Transient });
      }
      const server = serverOf(input.serverId);
      if (server.power !== 'running') throw ApplicationFailure.nonRetryable('server is not running', ErrorType.InvalidInput);
      const backupId = id('bak');
      const workflowId = options.reportBackupProgress ? Context.current().info.workflowExecution?.workflowId : undefined;
      if (options.reportBackupProgress && workflowId) {
        const report = (phase: BackupProgressReport['phase'], bytesDone: number, bytesEstimate: number | null) =>
          options.reportBackupProgress!(workflowId, { idempotencyKey: input.idempotencyKey, backupId, phase, bytesDone, bytesEstimate, at: now() });
        await report('preparing', 0, null);
        await report('streaming', 512, 1024);
      }
      await options.holdBackup?.();
      const at = now();
      const backup: BackupRecord = { backupId, createdAt: at, verifiedAt: at, sizeBytes: 1024, sha256: 'f'.repeat(64), reason: input.reason };
      backups.push(backup);
      backupKeys.set(input.idempotencyKey, backup);
      backupServer.set(backup.backupId, input.serverId);
      return backup;
    }),
    restoreBackup: (input) => record('restoreBackup', `restoreBackup ${input.backupId}`, input, () => {
      serverOf(input.serverId);
      if (!backups.some((b) => b.backupId === input.backupId)) throw ApplicationFailure.nonRetryable('no such backup', ErrorType.NotFound);
      if (options.corruptBackupIds?.includes(input.backupId)) throw ApplicationFailure.nonRetryable('backup corrupt', ErrorType.BackupCorrupt);
      return { restoredAt: now() };
    }),
    latestVerifiedBackup: (input) => record('latestVerifiedBackup', 'latestVerifiedBackup', input, () => {
      const usable = backups.filter((b) => !input.excludingBackupIds?.includes(b.backupId));
      return usable[usable.length - 1] ?? null;
    }),
    pruneExpiredBackups: (input) => record('pruneExpiredBackups', 'pruneExpiredBackups', input, () => ({ deletedBackupIds: [] })),
    sendMail: (input) => record('sendMail', `mail ${input.kind}${input.data.daysLeft ? ` ${input.data.daysLeft}d` : ''}`, input, () => {
      if (mailKeys.has(input.idempotencyKey)) return { status: 'already_sent' as const };
      mailKeys.add(input.idempotencyKey);
      mails.push(input);
      return { status: 'sent' as const };
    }),
    markEventsProcessed: (input) => record('markEventsProcessed', 'markEventsProcessed', input, () => {
      processedEventIds.push(...input.eventIds);
    }),
    writeProjection: (input) => record('writeProjection', `projection ${input.stage}`, input, () => {
      projections.push(input);
    }),
    appendAudit: (input) => record('appendAudit', `audit ${input.action}`, input, async () => {
      await options.holdAudit?.(input.action);
      audit.push(input);
    }),
  };

  return {
    activities,
    calls,
    steps: ({ includeBookkeeping = false } = {}) => calls.filter((c) => includeBookkeeping || !bookkeeping.includes(c.name)).map((c) => c.step),
    servers, snapshots, backups, mails, audit, projections, processedEventIds, options,
  };
}

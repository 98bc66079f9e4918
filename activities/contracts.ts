/**
 * The activity contracts of the customer lifecycle workflow.
 *
 * The workflow calls these through `proxyActivities` and imports this file with `import type` only.
 * Real implementations (Hetzner, backups, Stripe, email, database) implement these interfaces; the
 * in-memory doubles in test/doubles/ implement them for workflow tests.
 *
 * Rules every implementation follows:
 * - Inputs and outputs are plain JSON: dates are ISO 8601 UTC strings, ids are strings.
 * - Every call is idempotent: a retry after a crash has the same effect as one call (the workflow
 *   gives each side effect an idempotency key or a label to find earlier work by).
 * - Failures are `ApplicationFailure`s whose `type` is one of `ErrorType` in lib/errors.ts;
 *   non-retryable types are thrown with `ApplicationFailure.nonRetryable`.
 * - Nothing secret goes in or out (the workflow history is not a secret store): settings carry
 *   references to encrypted secrets, never the secrets themselves.
 */

import type { PlanId } from '../lib/product.ts';

/** Plans a customer can buy; what each one is lives in lib/product.ts. */
export type { PlanId };

/** What the workflow knows about a customer's server. */
export interface ServerSummary {
  /** Provider id of the server (Hetzner server id as a string). */
  serverId: string;
  /** Provider server type, e.g. `cx23`. */
  serverType: string;
  /** Provider location, e.g. `nbg1`. */
  location: string;
  /** Public IPv4 address, when it has one. */
  ipv4: string | null;
  /** ISO time the server was created. */
  createdAt: string;
}

/** Assistant settings that are safe to keep in workflow history (no secrets, only references). */
export interface AssistantSettings {
  /** Model name the assistant uses by default, e.g. `anthropic/claude-sonnet-4`. */
  model?: string;
  /** Id of the customer's encrypted model API key in the database (never the key itself). */
  apiKeySecretId?: string;
  /** IANA time zone of the customer, for the assistant's clock. */
  timeZone?: string;
}

/** Input of {@link CloudActivities.ensureServer}. */
export interface EnsureServerInput {
  customerId: string;
  /**
   * Labels the server is created with and found by before creating (`berth-customer=<id>`), so a
   * retry or a second call never makes a second server (invariant 2, docs/invariants.md).
   */
  labels: Record<string, string>;
  /** Server name to use when creating. */
  name: string;
  /** Server type to create; the workflow walks the plan's preference list. */
  serverType: string;
  /** Location to create in. */
  location: string;
  /** Create from this snapshot/image instead of the base image (used by wake from hibernation). */
  fromSnapshotId?: string;
}

/** A request to delete a server: either with the id of a verified backup of it, or with an operator override. */
export type DeleteServerInput =
  | { customerId: string; serverId: string; verifiedBackupId: string }
  | { customerId: string; serverId: string; override: DeletionOverride };

/** An operator's approval to delete a server without a verified backup (written to the audit log first). */
export interface DeletionOverride {
  /** Who approved (operator login or email). */
  approvedBy: string;
  /** The written reason, at least a sentence. */
  reason: string;
  /** ISO time of the approval. */
  approvedAt: string;
}

/** Cloud side of the lifecycle (Hetzner Cloud in production; activities/cloud/ implements it). */
export interface CloudActivities {
  /**
   * Returns the customer's server, creating it only if no server with the given labels exists.
   * Waits for the create action and for SSH to answer with the pinned host key.
   * Throws `CapacityUnavailable` when the type/location cannot be had now or the account limit is reached.
   */
  ensureServer(input: EnsureServerInput): Promise<ServerSummary>;
  /** Installs and configures the assistant on the server (idempotent: converges to the given settings). */
  setupAssistant(input: { customerId: string; serverId: string; settings: AssistantSettings }): Promise<{ assistantVersion: string }>;
  /** Applies changed settings to a running server's assistant and restarts it when needed. */
  applySettings(input: { customerId: string; serverId: string; settings: AssistantSettings }): Promise<void>;
  /** Powers the server on and waits until SSH answers with the pinned key. No-op if already on. */
  powerOn(input: { customerId: string; serverId: string }): Promise<void>;
  /** Shuts the server down gracefully (hard power-off after a timeout). No-op if already off. Still billed. */
  powerOff(input: { customerId: string; serverId: string }): Promise<void>;
  /**
   * Hibernates: powers off, snapshots the server, waits for the snapshot, then deletes the server
   * (a stopped server is still billed). Returns the snapshot id that {@link wakeFromSnapshot} uses.
   */
  hibernate(input: { customerId: string; serverId: string; verifiedBackupId: string }): Promise<{ snapshotId: string }>;
  /**
   * Creates the customer's server from a hibernation snapshot (idempotent by label), waits for SSH,
   * then deletes the snapshot. Throws `CapacityUnavailable` for a type that cannot be had and
   * `ServerTypeUnfit` for one whose disk cannot hold the snapshot.
   */
  wakeFromSnapshot(input: { customerId: string; snapshotId: string; serverType: string; location: string }): Promise<ServerSummary>;
  /**
   * Changes the server type (powers off, change_type keeping nothing smaller than the type's disk,
   * powers on). Before touching the server it throws `CapacityUnavailable` if the type cannot be had
   * (removed, deprecated, unavailable there) and `ServerTypeUnfit` if the server's disk is bigger
   * than the type's (Hetzner never shrinks a disk) or the architecture differs.
   */
  changeServerType(input: { customerId: string; serverId: string; serverType: string }): Promise<ServerSummary>;
  /**
   * Deletes the server. Re-checks that `verifiedBackupId` is a verified backup of this server
   * (throws `NoVerifiedBackup` otherwise) unless an operator override is given. No-op if already gone.
   */
  deleteServer(input: DeleteServerInput): Promise<void>;
}

/** Why a backup was made; part of its idempotency key and shown to the customer. */
export type BackupReason = 'daily' | 'manual' | 'before_restore' | 'before_hibernate' | 'before_plan_change' | 'expiry' | 'final';

/** A completed backup. Only verified backups are ever returned. */
export interface BackupRecord {
  backupId: string;
  /** ISO time the backup completed. */
  createdAt: string;
  /** ISO time the stored object was re-read and matched (size and SHA-256). */
  verifiedAt: string;
  sizeBytes: number;
  sha256: string;
  reason: BackupReason;
}

/** A phase of a backup (or restore) as the backup service reports it. */
export type BackupPhase = 'preparing' | 'streaming' | 'verifying' | 'restoring' | 'checking';

/** Progress of a running backup, sent by createBackup to the workflow that called it (`backupProgress` signal). */
export interface BackupProgressReport {
  /** The createBackup input's idempotency key: the workflow ignores reports of any other backup. */
  idempotencyKey: string;
  /** Id the backup will have once completed. */
  backupId: string;
  phase: BackupPhase;
  /** Bytes of the tar stream read from the server so far. */
  bytesDone: number;
  /** Estimated total (apparent size of the backed-up paths), or null before it is known. */
  bytesEstimate: number | null;
  /** ISO time of the report; an older report than the last one seen is ignored. */
  at: string;
}

/** Backup side of the lifecycle (SSH → S3; activities/backups/ implements it). */
export interface BackupActivities {
  /**
   * Backs up the server and returns only after the stored object was verified. Idempotent by
   * `idempotencyKey`: a retry returns the same backup if it already completed. Heartbeats progress,
   * and reports it to the calling workflow as a `backupProgress` signal ({@link BackupProgressReport}):
   * once at the start, then at most every 10 s. Reports are best effort (a lost one is not an error),
   * so the workflow must not depend on them. An attempt that is cancelled or timed out stops and
   * removes what it wrote; overlapping attempts never share an object, and only the attempt that owns
   * the record completes it (docs/decisions/018).
   */
  createBackup(input: { customerId: string; serverId: string; reason: BackupReason; idempotencyKey: string }): Promise<BackupRecord>;
  /**
   * Restores a verified backup onto the server. Throws `BackupCorrupt` (non-retryable) if the object
   * fails verification, `NotFound` if it does not exist.
   */
  restoreBackup(input: { customerId: string; serverId: string; backupId: string }): Promise<{ restoredAt: string }>;
  /** The newest verified backup of the customer, skipping `excludingBackupIds`, or null if none. */
  latestVerifiedBackup(input: { customerId: string; excludingBackupIds?: string[] }): Promise<BackupRecord | null>;
  /**
   * Deletes backups whose retention ended before `now` (per plan), keeping any a kept backup needs
   * and each customer's last verified backup while still in retention. Run by the daily Schedule.
   */
  pruneExpiredBackups(input: { now: string }): Promise<{ deletedBackupIds: string[] }>;
}

/** Every mail the lifecycle sends. */
export type MailKind =
  | 'welcome'
  | 'server_ready'
  | 'access_ending'
  | 'expired'
  | 'provisioning_trouble';

/** Input of {@link MailActivities.sendMail}. */
export interface SendMailInput {
  customerId: string;
  kind: MailKind;
  /**
   * `customer-<id>:<kind>[:<detail>]:<billing period>`: the mail is sent at most once per key, also
   * across retries and crashes (mail log + provider idempotency key).
   */
  idempotencyKey: string;
  /** Template data; plain values only (the activity looks up the address and name by customerId). */
  data: MailData;
}

/** Template data per kind. Dates are ISO strings. */
export interface MailData {
  /** access_ending: days left until access ends (7, 3, 1). */
  daysLeft?: number;
  /** access_ending/expired: when access ends or ended. */
  accessEndsAt?: string;
  /** access_ending: why the subscription will not renew. */
  reason?: 'canceled' | 'payment_failing';
  /** expired: until when the data (backups) is kept. */
  dataKeptUntil?: string;
  /** server_ready: the server's address. */
  serverAddress?: string | null;
  /** server_ready: true when data was restored from a backup. */
  restored?: boolean;
  plan?: PlanId;
}

/** Mail side of the lifecycle (activities/mail/ implements it). */
export interface MailActivities {
  /** Sends one mail unless a mail with the same idempotency key was already sent. */
  sendMail(input: SendMailInput): Promise<{ status: 'sent' | 'already_sent' }>;
}

/**
 * Billing side of the lifecycle (Stripe; activities/billing/). The workflow is driven by billing
 * *signals*; the one thing it asks billing is to record that a billing event took effect, so
 * reconciliation knows.
 */
export interface BillingActivities {
  /** Marks billing events as processed by the workflow (idempotent by event id). */
  markEventsProcessed(input: { customerId: string; eventIds: string[]; processedAt: string }): Promise<void>;
}

/** The lifecycle row pages read (written whenever the state a page shows changes). */
export interface LifecycleProjection {
  customerId: string;
  workflowId: string;
  stage: string;
  plan: PlanId | null;
  accessEndsAt: string | null;
  willRenew: boolean;
  needsAttention: boolean;
  attentionReason: string | null;
  server: { serverId: string | null; serverType: string | null; power: string; ipv4: string | null };
  nextDeadline: { at: string; action: string } | null;
  dataKeptUntil: string | null;
  lastBackup: { backupId: string; createdAt: string } | null;
  /** ISO time of the workflow state this row reflects. */
  asOf: string;
}

/** An audit log entry (operator actions and irreversible steps). */
export interface AuditEntry {
  customerId: string;
  at: string;
  /** `operator:<login>`, `customer`, or `workflow`. */
  actor: string;
  action: string;
  reason?: string;
  details?: Record<string, string | number | boolean | null>;
}

/** Database side of the lifecycle: the projection pages read and the audit log. */
export interface ProjectionActivities {
  /** Upserts the customer's lifecycle row; ignores a write whose `asOf` is older than the stored one. */
  writeProjection(input: LifecycleProjection): Promise<void>;
  /** Appends an audit entry (idempotent by customerId + at + action). */
  appendAudit(input: AuditEntry): Promise<void>;
}

/** Everything the lifecycle workflow calls; a worker registers an object implementing all of it. */
export type LifecycleActivities = CloudActivities & BackupActivities & MailActivities & BillingActivities & ProjectionActivities;

/** The fleet-wide billing job (run by the reconciliation Schedule, not by customer workflows). */
export interface BillingReconciliationActivities {
  /** Lists recent Stripe events and delivers those our webhook never processed. Idempotent. */
  reconcileStripeEvents(): Promise<{ listed: number; replayed: number }>;
}

/**
 * The cloud side of the customer lifecycle (activities/contracts.ts CloudActivities) on Hetzner
 * Cloud: ensure a server (idempotent by label), set up the assistant over pinned SSH, power on/off,
 * hibernate (snapshot + delete) and wake, change type, and delete only with a verified backup or an
 * approved, audited override.
 *
 * Crash safety: every step can be repeated. Servers are found by the label `berth-customer=<id>`
 * before anything is created; the pinned host key's fingerprint travels as a server label, so a retry
 * that finds a server whose database row was never written still knows which key to pin;
 * hibernation snapshots are found by label too. Every activity heartbeats on the worker's timer
 * (activities/heartbeat.ts) and names its step in the details.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { ApplicationFailure } from '@temporalio/common';
import type { Client } from 'ssh2';
import type { Db, ServerStatus } from '../../db/database.ts';
import { appendAudit, listAuditForSubject } from '../../db/repositories/audit-log.ts';
import { findBackup } from '../../db/repositories/backups.ts';
import { findLiveServer, findServerByProviderId, markServerDeleted, recordServer, setServerStatus } from '../../db/repositories/servers.ts';
import { ErrorType, errorMessage } from '../../lib/errors.ts';
import type { Logger } from '../../lib/log.ts';
import { decryptSecret, type MasterKeys } from '../../lib/secrets.ts';
import type {
  AssistantSettings, CloudActivities, DeleteServerInput, EnsureServerInput, ServerSummary,
} from '../contracts.ts';
import type { CloudFleet, CloudProject } from './fleet.ts';
import type { HetznerClient } from './hetzner/client.ts';
import { HetznerError, toApplicationFailure } from './hetzner/errors.ts';
import type { Image, Server, ServerType } from './hetzner/types.ts';
import { activityContext, heartbeat } from '../heartbeat.ts';
import { ensureCustomerKey, ensureGatewayToken, fingerprintFromLabel, fingerprintLabel, generateHostKey, type SshKeyPair } from './keys.ts';
import { connectPinned, sshExec } from './ssh.ts';
import { renderGatewayConfig, renderUserData, serverLayout, type UserDataVariant } from './user-data.ts';

/** Labels Berth puts on servers and snapshots. */
export const cloudLabels = {
  customer: 'berth-customer',
  /** Base32 SHA-256 fingerprint of the host key injected at creation (see keys.ts fingerprintLabel). */
  hostKey: 'berth-host-key',
  /** On a hibernation snapshot: the server it was taken from. */
  hibernatedFrom: 'berth-hibernated-from',
} as const;

/** The server name the lifecycle uses for a customer. */
export function serverName(customerId: string): string {
  return `berth-${customerId}`;
}

export interface CloudDeps {
  /** The one project's client; with a `fleet`, the client of each customer's project is used instead. */
  hetzner: HetznerClient;
  /** Several cloud projects: each customer's server lives in the project assigned to them (fleet.ts). */
  fleet?: CloudFleet;
  db: Db;
  masterKeys: MasterKeys;
  log: Logger;
  /** Which cloud-init to send: `production` (OpenClaw) or `local` (the local cloud's stand-in). */
  userDataVariant: UserDataVariant;
  /** Base image of new servers (default `debian-12`). */
  image?: string;
  /**
   * Where the gateway listens as seen from the server: `loopback` (production: 127.0.0.1) or
   * `server-address` (the local cloud, whose servers share the host's network; sim/hetzner/README.md).
   */
  gatewayHost?: 'loopback' | 'server-address';
  ssh?: {
    /** sshd port on servers (22). */
    port?: number;
    /** How long to wait for SSH to answer after boot (default 5 min). */
    waitMs?: number;
    /** How long to wait for cloud-init's install to finish (default 20 min). */
    installWaitMs?: number;
    /** Pause between SSH/boot polls (default 1 s). */
    pollMs?: number;
  };
  /** Graceful shutdown gets this long before a hard power-off (default 60 s). */
  shutdownTimeoutMs?: number;
}

/** What a caller needs to reach a server's assistant through an SSH tunnel. */
export interface AssistantConnection {
  client: Client;
  /** Host and port to forward to, as seen from the server. */
  gatewayHost: string;
  gatewayPort: number;
  /** The gateway's Bearer token (a secret: never log it). */
  token: string;
  close(): void;
}

/** Builds the cloud activities from their dependencies. */
export function createCloudActivities(deps: CloudDeps): CloudActivities {
  const { base: p, forCustomer, ensureServer } = routedProvisioning(deps);
  return {
    ensureServer: (input) => p.activity('ensureServer', () => ensureServer(input)),
    setupAssistant: (input) => p.activity('setupAssistant', async () => (await forCustomer(input.customerId)).setupAssistant(input)),
    applySettings: (input) => p.activity('applySettings', async () => {
      await (await forCustomer(input.customerId)).setupAssistant(input);
    }),
    powerOn: (input) => p.activity('powerOn', async () => (await forCustomer(input.customerId)).powerOn(input)),
    powerOff: (input) => p.activity('powerOff', async () => (await forCustomer(input.customerId)).powerOff(input)),
    hibernate: (input) => p.activity('hibernate', async () => (await forCustomer(input.customerId)).hibernate(input)),
    wakeFromSnapshot: (input) => p.activity('wakeFromSnapshot', async () => (await forCustomer(input.customerId)).wakeFromSnapshot(input)),
    changeServerType: (input) => p.activity('changeServerType', async () => (await forCustomer(input.customerId)).changeServerType(input)),
    deleteServer: (input) => p.activity('deleteServer', async () => (await forCustomer(input.customerId)).deleteServer(input)),
  };
}

/**
 * Provisioning bound to the customer's cloud project: the one client without a fleet, else the
 * client of the project the fleet assigned. ensureServer moves a customer whose project refused the
 * server for lack of room (`resource_limit_exceeded`) to the next project with room.
 */
function routedProvisioning(deps: CloudDeps) {
  type Provisioning = ReturnType<typeof createProvisioning>;
  const base = createProvisioning(deps);
  const byProject = new Map<string, Provisioning>();
  const of = (project: CloudProject): Provisioning => {
    let p = byProject.get(project.name);
    if (!p) byProject.set(project.name, (p = createProvisioning({ ...deps, hetzner: project.client })));
    return p;
  };
  const forCustomer = async (customerId: string): Promise<Provisioning> => (deps.fleet ? of(await deps.fleet.projectFor(customerId)) : base);
  async function ensureServer(input: EnsureServerInput): Promise<ServerSummary> {
    const fleet = deps.fleet;
    if (!fleet) return base.ensureServer(input);
    let project = await fleet.projectFor(input.customerId);
    for (;;) {
      try {
        return await of(project).ensureServer(input);
      } catch (err) {
        if (!(err instanceof HetznerError && err.code === 'resource_limit_exceeded')) throw err;
        project = await fleet.moveOn(input.customerId, project.name);
      }
    }
  }
  return { base, forCustomer, ensureServer };
}

/** How to reach a customer's server over SSH: address, login, the customer's key and the pinned host key. */
export interface ServerSshTarget {
  host: string;
  port: number;
  username: string;
  privateKey: string;
  hostKeyFingerprint: string;
}

/** SSH access to a customer's server for backups, the chat and terminal features (and tests). */
export function createServerAccess(deps: CloudDeps): {
  connectAssistant(customerId: string, serverId: string): Promise<AssistantConnection>;
  sshTarget(customerId: string, serverId: string): Promise<ServerSshTarget>;
} {
  const { base: p, forCustomer } = routedProvisioning(deps);
  return {
    connectAssistant: (customerId, serverId) => p.run(async () => (await forCustomer(customerId)).connectAssistant(customerId, serverId)),
    sshTarget: (customerId, serverId) => p.run(async () => (await forCustomer(customerId)).sshTarget(customerId, serverId)),
  };
}

function createProvisioning(deps: CloudDeps) {
  const { hetzner, db, masterKeys, log } = deps;
  const sshPort = deps.ssh?.port ?? 22;
  const pollMs = deps.ssh?.pollMs ?? 1000;

  // ---- activity plumbing ---------------------------------------------------------------------

  /** Runs `fn` with errors typed (HetznerError → ApplicationFailure; anything untyped → Transient). */
  async function run<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof ApplicationFailure) throw err;
      if (err instanceof HetznerError) throw toApplicationFailure(err);
      const message = errorMessage(err);
      throw ApplicationFailure.create({ message, type: ErrorType.Transient, cause: err instanceof Error ? err : undefined });
    }
  }

  /** As `run`, naming the step in the heartbeat details (the worker's interceptor heartbeats on a timer: activities/heartbeat.ts). */
  async function activity<T>(name: string, fn: () => Promise<T>): Promise<T> {
    heartbeat({ step: name });
    return run(fn);
  }

  function progress(step: string): void {
    heartbeat({ step });
    log.debug({ step }, 'provisioning');
  }

  function pause(ms: number): Promise<void> {
    const ctx = activityContext();
    return sleep(ms, undefined, ctx ? { signal: ctx.cancellationSignal } : undefined);
  }

  // ---- servers -------------------------------------------------------------------------------

  async function findCustomerServer(customerId: string): Promise<Server | undefined> {
    const servers = (await hetzner.servers.list({ label_selector: `${cloudLabels.customer}=${customerId}` }))
      .filter((s) => s.status !== 'deleting')
      .sort((a, b) => a.created.localeCompare(b.created) || a.id - b.id);
    if (servers.length > 1) log.error({ customerId, servers: servers.map((s) => s.id) }, 'more than one server carries the customer label; using the oldest');
    return servers[0];
  }

  /** The server, checked to belong to the customer (invariant 5, docs/invariants.md); undefined if it is gone. */
  async function ownedServer(customerId: string, serverId: string): Promise<Server | undefined> {
    const id = Number(serverId);
    if (!Number.isSafeInteger(id) || id <= 0) throw ApplicationFailure.nonRetryable(`bad server id ${JSON.stringify(serverId)}`, ErrorType.InvalidInput);
    let server: Server;
    try {
      server = await hetzner.servers.get(id);
    } catch (err) {
      if (err instanceof HetznerError && err.type === ErrorType.NotFound) return undefined;
      throw err;
    }
    if (server.labels[cloudLabels.customer] !== customerId) {
      throw ApplicationFailure.nonRetryable(`server ${serverId} does not belong to customer ${customerId}`, ErrorType.InvalidInput);
    }
    return server;
  }

  async function requireServer(customerId: string, serverId: string): Promise<Server> {
    const server = await ownedServer(customerId, serverId);
    if (!server) throw ApplicationFailure.nonRetryable(`server ${serverId} does not exist`, ErrorType.NotFound);
    return server;
  }

  /** Repeats a mutation while another action holds the server's lock (423 locked), e.g. one started before a crash. */
  async function unlocked<T>(what: string, fn: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (!(err instanceof HetznerError) || err.code !== 'locked' || attempt >= 120) throw err;
        progress(`${what}: server locked, waiting`);
        await pause(Math.min(2000, 200 * 2 ** Math.min(attempt, 4)));
      }
    }
  }

  /** Polls the server until `done(server)` (a create or action whose id a crash made us forget). */
  async function waitForServer(id: number, what: string, done: (s: Server) => boolean, timeoutMs = 600_000): Promise<Server> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const server = await hetzner.servers.get(id);
      if (done(server)) return server;
      if (Date.now() > deadline) throw ApplicationFailure.retryable(`server ${id} still ${server.status} while waiting to ${what}`, ErrorType.Transient);
      progress(`waiting for server ${id} to ${what} (${server.status})`);
      await pause(pollMs);
    }
  }

  function summary(server: Server): ServerSummary {
    return {
      serverId: String(server.id),
      serverType: server.server_type.name,
      location: server.location.name,
      ipv4: server.public_net.ipv4?.ip ?? null,
      createdAt: server.created,
    };
  }

  /**
   * The type, if Berth may pick it in the location now; otherwise throws CapacityUnavailable, so the
   * caller moves on to the plan's next candidate. Not available: absent from `GET /server_types`
   * (Hetzner removed it), not sold there, `available: false`, or deprecated at all (type-wide or in
   * that location; Hetzner's docs: a deprecated type stops being orderable at `unavailable_after`,
   * and Berth does not start new servers on a type that is on its way out).
   */
  async function checkAvailable(serverType: string, location: string): Promise<ServerType> {
    const [type] = await hetzner.serverTypes.list({ name: serverType });
    const here = type?.locations.find((l) => l.name === location);
    const reason = !type ? 'no longer exists'
      : !here ? `is not sold in ${location}`
        : here.available === false ? `is not available in ${location}`
          : here.deprecation || type.deprecation || type.deprecated ? `is deprecated${here.deprecation ? ` in ${location}` : ''}`
            : null;
    if (reason !== null) throw ApplicationFailure.create({ message: `server type ${serverType} ${reason}`, type: ErrorType.CapacityUnavailable });
    return type!;
  }

  /**
   * Throws ServerTypeUnfit when a server or snapshot of `diskGb` on `architecture` cannot take the
   * type: Hetzner never shrinks a disk (change_type: only types with an equal or bigger disk and the
   * same storage type; a snapshot: only types whose disk holds it) and does not cross architectures.
   */
  function checkFits(type: ServerType, what: string, diskGb: number, architecture: string, storageType?: string): void {
    const problem = type.disk < diskGb ? `its ${diskGb} GB disk is bigger than the ${type.disk} GB of ${type.name}`
      : type.architecture !== architecture ? `it is ${architecture} and ${type.name} is ${type.architecture}`
        : storageType !== undefined && type.storage_type !== storageType ? `its disk is ${storageType} storage and ${type.name} has ${type.storage_type}`
          : null;
    if (problem !== null) throw ApplicationFailure.nonRetryable(`${what} cannot take server type ${type.name}: ${problem}`, ErrorType.ServerTypeUnfit);
  }

  /** The fingerprint to pin: the database's record, else the label the server was created with. */
  async function pinnedFingerprint(server: Server): Promise<string> {
    const row = await findServerByProviderId(db, server.id);
    if (row?.hostKeyFingerprint) return row.hostKeyFingerprint;
    const label = server.labels[cloudLabels.hostKey];
    if (!label) throw ApplicationFailure.nonRetryable(`server ${server.id} has no pinned host key (not created by Berth?)`, ErrorType.Misconfigured);
    return fingerprintFromLabel(label);
  }

  async function record(customerId: string, server: Server, fingerprint: string): Promise<void> {
    // Hetzner lists this as the customer's only server: a live row for another server is stale.
    const live = await findLiveServer(db, customerId);
    if (live && Number(live.providerId) !== server.id) {
      log.warn({ customerId, stale: live.providerId, server: server.id }, 'marking a stale server row deleted');
      await markServerDeleted(db, live.id);
    }
    await recordServer(db, {
      userId: customerId,
      providerId: server.id,
      name: server.name,
      labels: server.labels,
      ipv4: server.public_net.ipv4?.ip ?? null,
      serverType: server.server_type.name,
      location: server.location.name,
      status: server.status as ServerStatus,
      hostKeyFingerprint: fingerprint,
    });
  }

  async function setStatus(server: Server, status: ServerStatus): Promise<void> {
    const row = await findServerByProviderId(db, server.id);
    if (row) await setServerStatus(db, row.id, status);
  }

  // ---- SSH ---------------------------------------------------------------------------------------

  function hostOf(server: Server): string {
    const ip = server.public_net.ipv4?.ip;
    if (!ip) throw ApplicationFailure.nonRetryable(`server ${server.id} has no IPv4 address`, ErrorType.Misconfigured);
    return ip;
  }

  async function connect(server: Server, key: SshKeyPair, fingerprint: string, readyTimeoutMs?: number): Promise<Client> {
    return connectPinned({ host: hostOf(server), port: sshPort, username: serverLayout.user, privateKey: key.privateKey, hostKeyFingerprint: fingerprint, readyTimeoutMs });
  }

  /** Waits until SSH answers with the pinned key and lets the customer in; a different key fails at once. */
  async function waitForSsh(server: Server, key: SshKeyPair, fingerprint: string): Promise<void> {
    const deadline = Date.now() + (deps.ssh?.waitMs ?? 300_000);
    for (let attempt = 1; ; attempt++) {
      try {
        const client = await connect(server, key, fingerprint, 10_000);
        try {
          const result = await sshExec(client, 'true');
          if (result.code === 0) return;
        } finally {
          client.end();
        }
      } catch (err) {
        if (err instanceof ApplicationFailure && err.type === ErrorType.HostKeyMismatch) {
          log.error({ server: server.id, host: hostOf(server) }, 'SSH host key mismatch');
          throw err;
        }
        if (Date.now() > deadline) throw err;
      }
      progress(`waiting for SSH on server ${server.id} (attempt ${attempt})`);
      await pause(pollMs);
    }
  }

  async function withSsh<T>(customerId: string, server: Server, fn: (client: Client) => Promise<T>): Promise<T> {
    const key = await ensureCustomerKey(db, masterKeys, customerId);
    const client = await connect(server, key, await pinnedFingerprint(server));
    try {
      return await fn(client);
    } finally {
      client.end();
    }
  }

  /** Waits for cloud-init's first-boot scripts (the assistant install) to finish. */
  async function waitForBootFinished(client: Client, server: Server): Promise<void> {
    const deadline = Date.now() + (deps.ssh?.installWaitMs ?? 1_200_000);
    for (;;) {
      const r = await sshExec(client, `test -f ${serverLayout.bootFinished} && echo finished || true`);
      if (r.stdout.includes('finished')) return;
      if (Date.now() > deadline) throw ApplicationFailure.retryable(`server ${server.id}: cloud-init has not finished installing`, ErrorType.Transient);
      progress(`waiting for cloud-init on server ${server.id}`);
      await pause(pollMs);
    }
  }

  async function writeFile(client: Client, target: '.openclaw/openclaw.json' | '.openclaw/.env', content: string): Promise<void> {
    // Content (token, API key) goes over stdin, never on a command line; 0600 from the start.
    const r = await sshExec(client, `umask 077 && mkdir -p "$HOME/.openclaw" && cat > "$HOME/${target}.tmp" && mv -f "$HOME/${target}.tmp" "$HOME/${target}"`, content);
    if (r.code !== 0) throw ApplicationFailure.retryable(`could not write ~/${target}: ${r.stderr.slice(-300)}`, ErrorType.Transient);
  }

  async function apply(client: Client, server: Server): Promise<string> {
    const r = await sshExec(client, `/bin/sh ${serverLayout.applyScript}`);
    if (r.code !== 0) throw ApplicationFailure.retryable(`assistant apply failed on server ${server.id} (exit ${r.code}): ${r.stderr.slice(-500)}`, ErrorType.Transient);
    const version = /assistant-version: (.+)/.exec(r.stdout)?.[1]?.trim();
    if (!version) throw ApplicationFailure.retryable(`assistant apply on server ${server.id} printed no version`, ErrorType.Transient);
    return version;
  }

  async function modelEnv(customerId: string, settings: AssistantSettings): Promise<string> {
    if (!settings.apiKeySecretId) return '';
    const row = await db.selectFrom('encryptedSecrets').selectAll()
      .where('id', '=', settings.apiKeySecretId).where('owner', '=', customerId).executeTakeFirst();
    if (!row) throw ApplicationFailure.nonRetryable(`secret ${settings.apiKeySecretId} of customer ${customerId} not found`, ErrorType.NotFound);
    const apiKey = decryptSecret(masterKeys, row, `${row.owner}/${row.purpose}`).toString('utf8');
    const provider = (settings.model ?? 'openai/').split('/')[0]!.toUpperCase().replace(/[^A-Z0-9]/g, '_');
    return `${provider}_API_KEY=${apiKey}\n`;
  }

  // ---- activities --------------------------------------------------------------------------------

  async function ensureServer(input: EnsureServerInput): Promise<ServerSummary> {
    const { customerId } = input;
    if (input.labels[cloudLabels.customer] !== undefined && input.labels[cloudLabels.customer] !== customerId) {
      throw ApplicationFailure.nonRetryable(`label ${cloudLabels.customer} must be the customer id`, ErrorType.InvalidInput);
    }
    const key = await ensureCustomerKey(db, masterKeys, customerId);
    progress('find server by label');
    let server = await findCustomerServer(customerId);
    if (!server) server = await createServer(input, key);
    else log.info({ customerId, server: server.id }, 'found the customer server by label');

    const fingerprint = await pinnedFingerprint(server);
    await record(customerId, server, fingerprint);
    if (server.status !== 'running') {
      // A create or start begun before a crash, or a server left off: converge to running.
      server = await waitForServer(server.id, 'settle', (s) => !s.locked && ['running', 'off'].includes(s.status));
      if (server.status === 'off') {
        progress('power on');
        await hetzner.actions.waitFor(await unlocked('power on', () => hetzner.servers.powerOn(server!.id)));
        server = await waitForServer(server.id, 'run', (s) => s.status === 'running');
      }
    }
    progress('wait for SSH with the pinned host key');
    await waitForSsh(server, key, fingerprint);
    await record(customerId, server, fingerprint);
    return summary(server);
  }

  async function createServer(input: EnsureServerInput, key: SshKeyPair): Promise<Server> {
    const { customerId } = input;
    progress(`check ${input.serverType} in ${input.location}`);
    const type = await checkAvailable(input.serverType, input.location);
    if (input.fromSnapshotId !== undefined) {
      const snapshot = await hetzner.images.get(Number(input.fromSnapshotId));
      checkFits(type, `snapshot ${snapshot.id}`, snapshot.disk_size, snapshot.architecture);
    }
    const hostKey = generateHostKey(`berth-host-${customerId}`);
    const labels = { ...input.labels, [cloudLabels.customer]: customerId, [cloudLabels.hostKey]: fingerprintLabel(hostKey.fingerprint) };
    progress(`create ${input.serverType} in ${input.location}`);
    let created;
    try {
      created = await hetzner.servers.create({
        name: input.name,
        server_type: input.serverType,
        location: input.location,
        image: input.fromSnapshotId ?? deps.image ?? 'debian-12',
        labels,
        user_data: renderUserData({ variant: deps.userDataVariant, hostKey, customerPublicKey: key.publicKey }),
        start_after_create: true,
      });
    } catch (err) {
      if (err instanceof HetznerError && err.code === 'uniqueness_error') {
        // Created by an attempt whose answer we never saw: it carries the label.
        const found = await findCustomerServer(customerId);
        if (found) return found;
        throw ApplicationFailure.nonRetryable(`server name ${input.name} is taken by a server without the customer label`, ErrorType.Misconfigured);
      }
      throw err;
    }
    log.info({ customerId, server: created.server.id, serverType: input.serverType, location: input.location }, 'server created');
    await record(customerId, created.server, hostKey.fingerprint);
    progress('wait for the create action');
    await hetzner.actions.waitFor(created.action);
    for (const next of created.next_actions) await hetzner.actions.waitFor(next);
    return hetzner.servers.get(created.server.id);
  }

  async function setupAssistant(input: { customerId: string; serverId: string; settings: AssistantSettings }): Promise<{ assistantVersion: string }> {
    const server = await requireServer(input.customerId, input.serverId);
    const token = await ensureGatewayToken(db, masterKeys, input.customerId);
    const env = await modelEnv(input.customerId, input.settings);
    return withSsh(input.customerId, server, async (client) => {
      await waitForBootFinished(client, server);
      progress('write assistant config');
      await writeFile(client, '.openclaw/openclaw.json', renderGatewayConfig({ token, model: input.settings.model, timeZone: input.settings.timeZone }));
      await writeFile(client, '.openclaw/.env', env);
      progress('apply assistant config');
      const assistantVersion = await apply(client, server);
      log.info({ customerId: input.customerId, server: server.id, assistantVersion }, 'assistant set up');
      return { assistantVersion };
    });
  }

  async function powerOn(input: { customerId: string; serverId: string }): Promise<void> {
    let server = await requireServer(input.customerId, input.serverId);
    if (server.status !== 'running') {
      server = await waitForServer(server.id, 'settle', (s) => !s.locked);
      if (server.status !== 'running') {
        progress('power on');
        await hetzner.actions.waitFor(await unlocked('power on', () => hetzner.servers.powerOn(server.id)));
        server = await waitForServer(server.id, 'run', (s) => s.status === 'running');
      }
    }
    const key = await ensureCustomerKey(db, masterKeys, input.customerId);
    await waitForSsh(server, key, await pinnedFingerprint(server));
    await setStatus(server, 'running');
  }

  async function powerOff(input: { customerId: string; serverId: string }): Promise<void> {
    const server = await requireServer(input.customerId, input.serverId);
    await stop(server);
  }

  async function stop(server: Server): Promise<void> {
    if (server.status === 'off') return setStatus(server, 'off');
    progress('shut down');
    await hetzner.actions.waitFor(await unlocked('shut down', () => hetzner.servers.shutdown(server.id)));
    const deadline = Date.now() + (deps.shutdownTimeoutMs ?? 60_000);
    let current = await hetzner.servers.get(server.id);
    while (current.status !== 'off' && Date.now() < deadline) {
      progress('waiting for the shutdown');
      await pause(pollMs);
      current = await hetzner.servers.get(server.id);
    }
    if (current.status !== 'off') {
      log.warn({ server: server.id }, 'graceful shutdown timed out; powering off');
      await hetzner.actions.waitFor(await unlocked('power off', () => hetzner.servers.powerOff(server.id)));
    }
    await setStatus(server, 'off');
  }

  async function hibernationSnapshot(customerId: string, serverId: string): Promise<Image | undefined> {
    const images = await hetzner.images.list({
      type: ['snapshot'],
      label_selector: `${cloudLabels.customer}=${customerId},${cloudLabels.hibernatedFrom}=${serverId}`,
    });
    return images.find((i) => i.status !== 'unavailable');
  }

  async function waitForImage(image: Image): Promise<Image> {
    let current = image;
    while (current.status === 'creating') {
      progress(`waiting for snapshot ${image.id}`);
      await pause(pollMs);
      current = await hetzner.images.get(image.id);
    }
    if (current.status !== 'available') throw ApplicationFailure.retryable(`snapshot ${image.id} is ${current.status}`, ErrorType.Transient);
    return current;
  }

  async function hibernate(input: { customerId: string; serverId: string; verifiedBackupId: string }): Promise<{ snapshotId: string }> {
    const { customerId, serverId } = input;
    await requireVerifiedBackup(customerId, serverId, input.verifiedBackupId, 'hibernate');
    const server = await ownedServer(customerId, serverId);
    let snapshot = await hibernationSnapshot(customerId, serverId);
    if (!server) {
      // Deleted by an earlier attempt after its snapshot was complete.
      if (!snapshot) throw ApplicationFailure.nonRetryable(`server ${serverId} is gone and has no hibernation snapshot`, ErrorType.NotFound);
      return { snapshotId: String((await waitForImage(snapshot)).id) };
    }
    // A stopped server gives a consistent snapshot.
    await stop(server);
    if (!snapshot) {
      progress('create snapshot');
      const created = await unlocked('snapshot', () => hetzner.servers.createImage(server.id, {
        type: 'snapshot',
        description: `hibernation of ${server.name}`,
        labels: { [cloudLabels.customer]: customerId, [cloudLabels.hibernatedFrom]: serverId },
      }));
      await hetzner.actions.waitFor(created.action);
      snapshot = created.image;
    }
    const ready = await waitForImage(await hetzner.images.get(snapshot.id));
    // The snapshot holds the server's data and is complete: only now the (still billed) server goes.
    progress('delete the hibernated server');
    await deleteAtProvider(server);
    log.info({ customerId, server: server.id, snapshot: ready.id }, 'server hibernated');
    return { snapshotId: String(ready.id) };
  }

  async function deleteAtProvider(server: Server): Promise<void> {
    try {
      await hetzner.actions.waitFor(await unlocked('delete', () => hetzner.servers.delete(server.id)));
    } catch (err) {
      if (!(err instanceof HetznerError && err.type === ErrorType.NotFound)) throw err;
    }
    const row = await findServerByProviderId(db, server.id);
    if (row) await markServerDeleted(db, row.id);
  }

  async function wakeFromSnapshot(input: { customerId: string; snapshotId: string; serverType: string; location: string }): Promise<ServerSummary> {
    const { customerId } = input;
    const result = await ensureServer({
      customerId,
      labels: { [cloudLabels.customer]: customerId },
      name: serverName(customerId),
      serverType: input.serverType,
      location: input.location,
      fromSnapshotId: input.snapshotId,
    });
    const server = await requireServer(customerId, result.serverId);
    // The snapshot carries the assistant's config; restart it on the new server (its address changed).
    await withSsh(customerId, server, async (client) => {
      await waitForBootFinished(client, server);
      const configured = await sshExec(client, `test -s "$HOME/.openclaw/openclaw.json" && echo yes || true`);
      if (configured.stdout.includes('yes')) await apply(client, server);
    });
    try {
      await hetzner.images.delete(Number(input.snapshotId));
    } catch (err) {
      if (!(err instanceof HetznerError && err.type === ErrorType.NotFound)) throw err;
    }
    return result;
  }

  async function changeServerType(input: { customerId: string; serverId: string; serverType: string }): Promise<ServerSummary> {
    const { customerId } = input;
    let server = await requireServer(customerId, input.serverId);
    if (server.server_type.name !== input.serverType) {
      // Both checks come before the server is stopped: a change that cannot be made never bounces it.
      const type = await checkAvailable(input.serverType, server.location.name);
      checkFits(type, `server ${server.id}`, server.primary_disk_size, server.server_type.architecture, server.server_type.storage_type);
      const wasRunning = server.status !== 'off';
      await stop(server);
      try {
        progress(`change type to ${input.serverType}`);
        // The customer gets the disk the plan sells; a later move to a smaller disk rebuilds (docs/decisions: plan changes).
        await hetzner.actions.waitFor(await unlocked('change type', () => hetzner.servers.changeType(server.id, input.serverType, true)));
      } catch (err) {
        // Leave the customer's server as it was (running) when the new type cannot be had.
        if (wasRunning) await powerOn({ customerId, serverId: input.serverId });
        throw err;
      }
    }
    await powerOn({ customerId, serverId: input.serverId });
    server = await hetzner.servers.get(server.id);
    await record(customerId, server, await pinnedFingerprint(server));
    return summary(server);
  }

  /** Invariant 1 (docs/invariants.md): a server is deleted only with a completed, verified backup of it (of this customer). */
  async function requireVerifiedBackup(customerId: string, serverId: string, backupId: string, what: string): Promise<void> {
    const row = await findServerByProviderId(db, Number(serverId));
    const backup = await findBackup(db, backupId).catch(() => undefined);
    const problem = !backup ? 'does not exist'
      : backup.userId !== customerId ? 'belongs to another customer'
        : backup.status !== 'completed' ? `is ${backup.status}`
          : backup.verifiedAt === null ? 'was never verified'
            : backup.serverId !== null && row && backup.serverId !== row.id ? 'is a backup of another server'
              : null;
    if (problem) {
      throw ApplicationFailure.nonRetryable(`refusing to ${what} server ${serverId}: backup ${backupId} ${problem}`, ErrorType.NoVerifiedBackup);
    }
  }

  async function deleteServer(input: DeleteServerInput): Promise<void> {
    const { customerId, serverId } = input;
    const server = await ownedServer(customerId, serverId);
    const row = await findServerByProviderId(db, Number(serverId));
    if ('override' in input) {
      const { approvedBy, reason, approvedAt } = input.override;
      if (!approvedBy?.trim() || !reason?.trim()) throw ApplicationFailure.nonRetryable('a deletion override needs approvedBy and a reason', ErrorType.InvalidInput);
      const subject = `customer:${customerId}`;
      const already = (await listAuditForSubject(db, subject)).some((e) =>
        e.action === 'server_delete_override' && (e.details as Record<string, unknown>).serverId === serverId);
      // Written before the deletion: the approval is on record even if the delete then fails.
      if (!already) {
        await appendAudit(db, { actor: `operator:${approvedBy}`, action: 'server_delete_override', subject, details: { serverId, reason, approvedAt } });
      }
    } else {
      await requireVerifiedBackup(customerId, serverId, input.verifiedBackupId, 'delete');
    }
    if (!server) {
      if (row) await markServerDeleted(db, row.id);
      return;
    }
    progress('delete server');
    await deleteAtProvider(server);
    log.info({ customerId, server: server.id, override: 'override' in input }, 'server deleted');
  }

  async function sshTarget(customerId: string, serverId: string): Promise<ServerSshTarget> {
    const server = await requireServer(customerId, serverId);
    const key = await ensureCustomerKey(db, masterKeys, customerId);
    return { host: hostOf(server), port: sshPort, username: serverLayout.user, privateKey: key.privateKey, hostKeyFingerprint: await pinnedFingerprint(server) };
  }

  async function connectAssistant(customerId: string, serverId: string): Promise<AssistantConnection> {
    const server = await requireServer(customerId, serverId);
    const key = await ensureCustomerKey(db, masterKeys, customerId);
    const token = await ensureGatewayToken(db, masterKeys, customerId);
    const client = await connect(server, key, await pinnedFingerprint(server));
    return {
      client,
      gatewayHost: deps.gatewayHost === 'server-address' ? hostOf(server) : '127.0.0.1',
      gatewayPort: serverLayout.gatewayPort,
      token,
      close: () => client.end(),
    };
  }

  return {
    run, activity, ensureServer, setupAssistant, powerOn, powerOff, hibernate, wakeFromSnapshot, changeServerType, deleteServer, connectAssistant, sshTarget,
  };
}


import { randomBytes, randomUUID } from 'node:crypto';
import { promises as fs, mkdtempSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHetznerClient, type HetznerClient } from '../../activities/cloud/hetzner/client.ts';
import { fingerprintFromLabel, fingerprintLabel, generateEd25519, generateHostKey, secretPurposes, sshFingerprint } from '../../activities/cloud/keys.ts';
import { cloudLabels, createCloudActivities, createServerAccess, serverName, type AssistantConnection, type CloudDeps } from '../../activities/cloud/provisioning.ts';
import { forwardOut, sshExec } from '../../activities/cloud/ssh.ts';
import type { CloudActivities } from '../../activities/contracts.ts';
import { listAuditForSubject } from '../../db/repositories/audit-log.ts';
import { completeBackup, markBackupVerified, startBackup } from '../../db/repositories/backups.ts';
import { getEncryptedSecret } from '../../db/repositories/encrypted-secrets.ts';
import { findServerByProviderId } from '../../db/repositories/servers.ts';
import { createUser } from '../../db/repositories/users.ts';
import { ErrorType } from '../../lib/errors.ts';
import { createLogger } from '../../lib/log.ts';
import { decryptSecret, encryptSecret, masterKeysFrom } from '../../lib/secrets.ts';
import { startLocalCloud, type LocalCloud } from '../../sim/hetzner/local-cloud.ts';
import { useTestDatabase } from '../support/db.ts';
import { hetznerConformance } from '../support/openapi.ts';

// Proves, against the local cloud (real sshd servers) and real PostgreSQL: ensureServer is idempotent
// (twice → one server) and pins the host key it injected; the customer key is stored encrypted; the
// stand-in assistant answers chat completions through an SSH tunnel with the gateway token (and not
// without it); capacity problems are CapacityUnavailable; a server showing another host key fails
// non-retryably with HostKeyMismatch; delete is refused without a verified backup of this customer
// and allowed with one or with an audited override; hibernate + wake keeps the customer's files;
// change of server type (growing the disk), refused before anything is touched when the disk would
// shrink (ServerTypeUnfit) or the type is removed or deprecated (CapacityUnavailable, as for create and
// wake); and every exchange conforms to Hetzner's OpenAPI spec.

const log = createLogger('provisioning-test', 'warn');
const conformance = hetznerConformance();
const validator = conformance.validator;
const testDb = useTestDatabase({ name: 'provisioning' });

async function failureOf(p: Promise<unknown>): Promise<ApplicationFailure> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ApplicationFailure) return err;
    throw err;
  }
  throw new Error('expected the call to fail');
}

/** POSTs a chat completion through an SSH tunnel to the server's gateway. */
async function chat(conn: AssistantConnection, token: string, text: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const channel = await forwardOut(conn.client, conn.gatewayHost, conn.gatewayPort);
  return new Promise((resolve, reject) => {
    const req = http.request({
      method: 'POST', host: 'gateway', path: '/v1/chat/completions',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      createConnection: () => channel as unknown as import('node:net').Socket,
    }, (res) => {
      let data = '';
      res.on('data', (d: Buffer) => (data += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(data) as Record<string, unknown> }));
    });
    req.on('error', reject);
    req.end(JSON.stringify({ model: 'openclaw:main', messages: [{ role: 'user', content: text }] }));
  });
}

describe('secret envelopes and host key labels', () => {
  const oldKey = { id: 'k-old', base64: randomBytes(32).toString('base64') };
  const newKey = { id: 'k-new', base64: randomBytes(32).toString('base64') };

  it('encrypts under the current key, decrypts after rotation, and names an unknown key id clearly', async () => {
    const sealed = encryptSecret(masterKeysFrom(oldKey), 'private key', 'owner/purpose');
    expect(sealed.keyId).toBe('k-old');
    expect(sealed.ciphertext.toString()).not.toContain('private key');
    expect(decryptSecret(masterKeysFrom(newKey, [oldKey]), sealed, 'owner/purpose').toString()).toBe('private key');
    const unknown = await failureOf(Promise.resolve().then(() => decryptSecret(masterKeysFrom(newKey), sealed, 'owner/purpose')));
    expect(unknown.type).toBe(ErrorType.KeyUnavailable);
    expect(unknown.message).toContain('master key "k-old" is not configured');
    // Another row's context (owner/purpose) does not open it.
    const moved = await failureOf(Promise.resolve().then(() => decryptSecret(masterKeysFrom(oldKey), sealed, 'other/purpose')));
    expect(moved.type).toBe(ErrorType.KeyUnavailable);
  });

  it('a host key fingerprint survives the round trip through a Hetzner label value', () => {
    const { fingerprint } = generateHostKey('h');
    const label = fingerprintLabel(fingerprint);
    expect(label).toMatch(/^[a-z2-7]{52}$/);
    expect(fingerprintFromLabel(label)).toBe(fingerprint);
  });
});

describe('provisioning activities against the local cloud', () => {
  let cloud: LocalCloud;
  let hetzner: HetznerClient;
  let deps: CloudDeps;
  let cloudActs: CloudActivities;
  let access: ReturnType<typeof createServerAccess>;

  async function newCustomer(): Promise<string> {
    const user = await createUser(testDb.db, { email: `c-${randomUUID()}@example.com`, passwordHash: 'x', name: 'Customer' });
    return user.id;
  }

  function ensure(customerId: string, serverType = 'cx23', location = 'fsn1') {
    return cloudActs.ensureServer({ customerId, labels: { [cloudLabels.customer]: customerId }, name: serverName(customerId), serverType, location });
  }

  async function serversOf(customerId: string) {
    return hetzner.servers.list({ label_selector: `${cloudLabels.customer}=${customerId}` });
  }

  beforeAll(async () => {
    cloud = await startLocalCloud({
      dataDir: mkdtempSync(path.join(os.tmpdir(), 'berth-provisioning-')),
      actionDurationMs: 50,
      onExchange: validator?.onExchange,
      log,
    });
    hetzner = createHetznerClient({ endpoint: cloud.endpoint, token: 't', actionPoll: { initialMs: 50, maxMs: 200 } });
    deps = {
      hetzner,
      db: testDb.db,
      masterKeys: masterKeysFrom({ id: 'test-1', base64: randomBytes(32).toString('base64') }),
      log,
      userDataVariant: 'local',
      gatewayHost: 'server-address',
      ssh: { pollMs: 100, waitMs: 20_000, installWaitMs: 60_000 },
      shutdownTimeoutMs: 10_000,
    };
    cloudActs = createCloudActivities(deps);
    access = createServerAccess(deps);
  });

  afterAll(async () => {
    await hetzner?.close();
    await cloud?.stop({ removeData: true });
  });

  it('ensureServer twice gives one server, pinned to the host key it injected, with the customer key stored encrypted', async () => {
    const customerId = await newCustomer();
    const first = await ensure(customerId);
    const second = await ensure(customerId);
    expect(second).toEqual(first);
    const servers = await serversOf(customerId);
    expect(servers.map((s) => String(s.id))).toEqual([first.serverId]);
    expect(first).toMatchObject({ serverType: 'cx23', location: 'fsn1' });
    expect(first.ipv4).toMatch(/^127\.0\.\d+\.\d+$/);

    // The fingerprint on record is the key the server really shows (read from its disk).
    const row = await findServerByProviderId(testDb.db, Number(first.serverId));
    const diskKey = await fs.readFile(path.join(cloud.machine(Number(first.serverId))!.diskDir, 'etc/ssh/ssh_host_ed25519_key.pub'), 'utf8');
    expect(row).toMatchObject({ userId: customerId, status: 'running', deletedAt: null, hostKeyFingerprint: sshFingerprint(diskKey) });

    const secret = await getEncryptedSecret(testDb.db, customerId, secretPurposes.sshKey);
    expect(secret?.keyId).toBe('test-1');
    expect(secret!.ciphertext.toString('utf8')).not.toContain('OPENSSH PRIVATE KEY');
  });

  it('sets up the stand-in assistant, which answers chat completions through an SSH tunnel with the gateway token', async () => {
    const customerId = await newCustomer();
    const server = await ensure(customerId);
    const { assistantVersion } = await cloudActs.setupAssistant({ customerId, serverId: server.serverId, settings: { model: 'openai/gpt-5', timeZone: 'Europe/Berlin' } });
    expect(assistantVersion).toBe('berth-standin/1.0.0');
    // Idempotent: a second run converges to the same state.
    expect(await cloudActs.setupAssistant({ customerId, serverId: server.serverId, settings: { model: 'openai/gpt-5' } })).toEqual({ assistantVersion });

    const conn = await access.connectAssistant(customerId, server.serverId);
    try {
      const ok = await chat(conn, conn.token, 'hello berth');
      expect(ok.status).toBe(200);
      expect(ok.body).toMatchObject({ object: 'chat.completion', choices: [{ message: { role: 'assistant', content: 'stand-in assistant heard: hello berth' } }] });
      expect((await chat(conn, 'not-the-token', 'hello')).status).toBe(401);
      // The config holding the token is private to the berth user.
      const mode = await sshExec(conn.client, 'stat -c %a "$HOME/.openclaw/openclaw.json"');
      expect(mode.stdout.trim()).toBe('600');
    } finally {
      conn.close();
    }
  });

  it('a type/location that cannot be had is CapacityUnavailable, and nothing is created', async () => {
    const customerId = await newCustomer();
    cloud.setFaults({ unavailable: [{ serverType: 'cx23', location: 'fsn1' }] });
    try {
      const outOfStock = await failureOf(ensure(customerId, 'cx23', 'fsn1'));
      expect(outOfStock.type).toBe(ErrorType.CapacityUnavailable);
      // Not sold there at all (live GET /server_types): refused before any create.
      const notSold = await failureOf(ensure(customerId, 'cx23', 'ash'));
      expect(notSold.type).toBe(ErrorType.CapacityUnavailable);
      expect(await serversOf(customerId)).toEqual([]);
    } finally {
      cloud.setFaults({});
    }
  });

  it('a type Hetzner removed or deprecated is CapacityUnavailable (the next candidate is tried), for create and change alike', async () => {
    const customerId = await newCustomer();
    cloud.setFaults({
      removedServerTypes: ['cx23'],
      deprecatedServerTypes: [{ serverType: 'cpx22', location: 'fsn1', announced: new Date(Date.now() - 86_400_000).toISOString(), unavailableAfter: new Date(Date.now() + 30 * 86_400_000).toISOString() }],
    });
    try {
      const removed = await failureOf(ensure(customerId, 'cx23', 'fsn1'));
      expect([removed.type, removed.nonRetryable]).toEqual([ErrorType.CapacityUnavailable, false]);
      expect(removed.message).toMatch(/cx23 no longer exists/);
      // Announced, still orderable, but on its way out: Berth does not start new servers on it.
      const deprecated = await failureOf(ensure(customerId, 'cpx22', 'fsn1'));
      expect([deprecated.type, deprecated.message]).toEqual([ErrorType.CapacityUnavailable, expect.stringMatching(/cpx22 is deprecated in fsn1/)]);
      expect(await serversOf(customerId)).toEqual([]);
      const server = await ensure(customerId, 'cx33', 'fsn1');
      const before = cloud.requests.length;
      const change = await failureOf(cloudActs.changeServerType({ customerId, serverId: server.serverId, serverType: 'cx23' }));
      expect(change.type).toBe(ErrorType.CapacityUnavailable);
      expect(cloud.requests.slice(before).filter((r) => r.method === 'POST').map((r) => r.template)).toEqual([]);
    } finally {
      cloud.setFaults({});
    }
  });

  it('a downgrade to a type with a smaller disk is refused with ServerTypeUnfit before the server is touched', async () => {
    const customerId = await newCustomer();
    const server = await ensure(customerId, 'cx33', 'fsn1');
    const before = cloud.requests.length;
    const refused = await failureOf(cloudActs.changeServerType({ customerId, serverId: server.serverId, serverType: 'cx23' }));
    expect([refused.type, refused.nonRetryable]).toEqual([ErrorType.ServerTypeUnfit, true]);
    expect(refused.message).toMatch(/80 GB disk is bigger than the 40 GB of cx23/);
    // No shutdown, no change, no power-on: the customer's server kept running throughout.
    expect(cloud.requests.slice(before).filter((r) => r.method === 'POST').map((r) => r.template)).toEqual([]);
    expect(await hetzner.servers.get(Number(server.serverId))).toMatchObject({ status: 'running', server_type: { name: 'cx33' }, primary_disk_size: 80 });
    // What Hetzner itself answers when asked anyway (the local cloud follows its rule).
    await hetzner.actions.waitFor(await hetzner.servers.powerOff(Number(server.serverId)));
    const direct = await hetzner.servers.changeType(Number(server.serverId), 'cx23', false).then(() => undefined, (err: unknown) => err);
    expect(direct).toMatchObject({ status: 422, code: 'invalid_server_type', type: ErrorType.ServerTypeUnfit });
    await cloudActs.powerOn({ customerId, serverId: server.serverId });
  });

  it('a server woken from a snapshot passes over a removed type, and a type too small for the snapshot is ServerTypeUnfit', async () => {
    const customerId = await newCustomer();
    const server = await ensure(customerId, 'cx33', 'fsn1');
    const row = (await findServerByProviderId(testDb.db, Number(server.serverId)))!;
    const b = await startBackup(testDb.db, { userId: customerId, serverId: row.id, kind: 'full', parentId: null, objectKey: `k/${randomUUID()}`, encryptionKeyId: 'k1' });
    await completeBackup(testDb.db, b.id, { sizeBytes: 10, sha256: 'a'.repeat(64) });
    await markBackupVerified(testDb.db, b.id);
    const { snapshotId } = await cloudActs.hibernate({ customerId, serverId: server.serverId, verifiedBackupId: b.id });
    cloud.setFaults({ removedServerTypes: ['cx33'] });
    try {
      const gone = await failureOf(cloudActs.wakeFromSnapshot({ customerId, snapshotId, serverType: 'cx33', location: 'fsn1' }));
      expect(gone.type).toBe(ErrorType.CapacityUnavailable);
      const small = await failureOf(cloudActs.wakeFromSnapshot({ customerId, snapshotId, serverType: 'cx23', location: 'fsn1' }));
      expect([small.type, small.message]).toEqual([ErrorType.ServerTypeUnfit, expect.stringMatching(/80 GB disk is bigger than the 40 GB of cx23/)]);
      expect(await serversOf(customerId)).toEqual([]);
      const woken = await cloudActs.wakeFromSnapshot({ customerId, snapshotId, serverType: 'cpx32', location: 'nbg1' });
      expect(woken).toMatchObject({ serverType: 'cpx32', location: 'nbg1' });
      expect((await serversOf(customerId)).map((s) => String(s.id))).toEqual([woken.serverId]);
    } finally {
      cloud.setFaults({});
    }
  });

  it('a server answering with a different host key fails non-retryably with HostKeyMismatch', async () => {
    const customerId = await newCustomer();
    const server = await ensure(customerId);
    const id = Number(server.serverId);
    // Someone else's key takes the server's place (what a man in the middle would show).
    const impostor = generateEd25519('impostor');
    await hetzner.actions.waitFor(await hetzner.servers.powerOff(id));
    const sshDir = path.join(cloud.machine(id)!.diskDir, 'etc/ssh');
    await fs.writeFile(path.join(sshDir, 'ssh_host_ed25519_key'), impostor.privateKey, { mode: 0o600 });
    await fs.writeFile(path.join(sshDir, 'ssh_host_ed25519_key.pub'), `${impostor.publicKey}\n`);
    const failure = await failureOf(cloudActs.powerOn({ customerId, serverId: server.serverId }));
    expect(failure.type).toBe(ErrorType.HostKeyMismatch);
    expect(failure.nonRetryable).toBe(true);
    const again = await failureOf(ensure(customerId));
    expect(again.type).toBe(ErrorType.HostKeyMismatch);
    expect(again.nonRetryable).toBe(true);
  });

  it('delete is refused without a verified backup of this customer, allowed with one or with an audited override', async () => {
    const customerId = await newCustomer();
    const other = await newCustomer();
    const server = await ensure(customerId);
    const row = (await findServerByProviderId(testDb.db, Number(server.serverId)))!;
    const backup = async (userId: string, verified: boolean) => {
      const b = await startBackup(testDb.db, { userId, serverId: userId === customerId ? row.id : null, kind: 'full', parentId: null, objectKey: `k/${randomUUID()}`, encryptionKeyId: 'k1' });
      await completeBackup(testDb.db, b.id, { sizeBytes: 10, sha256: 'a'.repeat(64) });
      if (verified) await markBackupVerified(testDb.db, b.id);
      return b.id;
    };
    for (const verifiedBackupId of [randomUUID(), await backup(customerId, false), await backup(other, true)]) {
      const refused = await failureOf(cloudActs.deleteServer({ customerId, serverId: server.serverId, verifiedBackupId }));
      expect(refused.type).toBe(ErrorType.NoVerifiedBackup);
      expect(refused.nonRetryable).toBe(true);
    }
    expect(await serversOf(customerId)).toHaveLength(1);

    await cloudActs.deleteServer({ customerId, serverId: server.serverId, verifiedBackupId: await backup(customerId, true) });
    expect(await serversOf(customerId)).toEqual([]);
    expect((await findServerByProviderId(testDb.db, Number(server.serverId)))?.deletedAt).not.toBeNull();
    // Already gone: a retry is a no-op.
    await cloudActs.deleteServer({ customerId, serverId: server.serverId, verifiedBackupId: await backup(customerId, true) });

    // With an operator override instead, and the approval in the audit log.
    const second = await ensure(customerId);
    const override = { approvedBy: 'alice', reason: 'Customer asked for immediate erasure in ticket 42.', approvedAt: new Date().toISOString() };
    await cloudActs.deleteServer({ customerId, serverId: second.serverId, override });
    await cloudActs.deleteServer({ customerId, serverId: second.serverId, override });
    expect(await serversOf(customerId)).toEqual([]);
    const audit = (await listAuditForSubject(testDb.db, `customer:${customerId}`)).filter((e) => e.action === 'server_delete_override');
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ actor: 'operator:alice', details: { serverId: second.serverId, reason: override.reason } });
  });

  it('hibernate (snapshot + delete) and wake keep the files, and the assistant answers on the new server', async () => {
    const customerId = await newCustomer();
    const server = await ensure(customerId);
    await cloudActs.setupAssistant({ customerId, serverId: server.serverId, settings: {} });
    let conn = await access.connectAssistant(customerId, server.serverId);
    await sshExec(conn.client, 'echo "remember me" > ~/notes.txt');
    conn.close();

    // Hibernation deletes the server, so like any delete it needs a verified backup of it first.
    const refused = await failureOf(cloudActs.hibernate({ customerId, serverId: server.serverId, verifiedBackupId: randomUUID() }));
    expect(refused.type).toBe(ErrorType.NoVerifiedBackup);
    expect(await serversOf(customerId)).toHaveLength(1);
    const row = (await findServerByProviderId(testDb.db, Number(server.serverId)))!;
    const b = await startBackup(testDb.db, { userId: customerId, serverId: row.id, kind: 'full', parentId: null, objectKey: `k/${randomUUID()}`, encryptionKeyId: 'k1' });
    await completeBackup(testDb.db, b.id, { sizeBytes: 10, sha256: 'a'.repeat(64) });
    await markBackupVerified(testDb.db, b.id);

    const { snapshotId } = await cloudActs.hibernate({ customerId, serverId: server.serverId, verifiedBackupId: b.id });
    expect(await serversOf(customerId)).toEqual([]);
    // A retried hibernate after the delete returns the same snapshot.
    expect(await cloudActs.hibernate({ customerId, serverId: server.serverId, verifiedBackupId: b.id })).toEqual({ snapshotId });

    const woken = await cloudActs.wakeFromSnapshot({ customerId, snapshotId, serverType: 'cx23', location: 'fsn1' });
    expect(woken.serverId).not.toBe(server.serverId);
    expect((await serversOf(customerId)).map((s) => String(s.id))).toEqual([woken.serverId]);
    await expect(hetzner.images.get(Number(snapshotId))).rejects.toThrow(/not found/);
    conn = await access.connectAssistant(customerId, woken.serverId);
    try {
      expect((await sshExec(conn.client, 'cat ~/notes.txt')).stdout).toBe('remember me\n');
      const reply = await chat(conn, conn.token, 'still there?');
      expect(reply.status).toBe(200);
    } finally {
      conn.close();
    }
  });

  it('changes the server type (power off, change_type, power on) and keeps SSH pinned', async () => {
    const customerId = await newCustomer();
    const server = await ensure(customerId);
    const changed = await cloudActs.changeServerType({ customerId, serverId: server.serverId, serverType: 'cx33' });
    expect(changed).toMatchObject({ serverId: server.serverId, serverType: 'cx33' });
    // The customer gets the disk of the plan's type (upgrade_disk).
    expect(await hetzner.servers.get(Number(server.serverId))).toMatchObject({ status: 'running', primary_disk_size: 80 });
    await cloudActs.powerOff({ customerId, serverId: server.serverId });
    expect((await hetzner.servers.get(Number(server.serverId))).status).toBe('off');
    await cloudActs.powerOn({ customerId, serverId: server.serverId });
    expect((await findServerByProviderId(testDb.db, Number(server.serverId)))?.serverType).toBe('cx33');
  });

  it.skipIf(conformance.skip)('every exchange with the local cloud conforms to the OpenAPI spec', () => {
    const checked = conformance.require();
    expect(checked.checked).toBeGreaterThan(20);
    expect(checked.problems).toEqual([]);
  });
});

import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCloudFleet, type CloudFleet } from '../../activities/cloud/fleet.ts';
import { createHetznerClient, type HetznerClient } from '../../activities/cloud/hetzner/client.ts';
import { HetznerError } from '../../activities/cloud/hetzner/errors.ts';
import { cloudLabels, createCloudActivities, serverName } from '../../activities/cloud/provisioning.ts';
import type { CloudActivities } from '../../activities/contracts.ts';
import { createUser } from '../../db/repositories/users.ts';
import { ErrorType } from '../../lib/errors.ts';
import { createLogger } from '../../lib/log.ts';
import { masterKeysFrom } from '../../lib/secrets.ts';
import { startLocalCloud, type LocalCloud } from '../../sim/hetzner/local-cloud.ts';
import { useTestDatabase } from '../support/db.ts';
import { loadHetznerValidator } from '../support/openapi.ts';

// Proves, against the local cloud run as three Hetzner projects (real sshd servers) and real PostgreSQL:
// each project sees only its own servers, has its own request budget and refuses a server past its
// limit with resource_limit_exceeded; customers fill the first project with room, then land in the
// next; a customer whose project filled up behind Berth's count moves on when it is refused; retries
// find the server where it is (one server per customer across projects); with every project full the
// answer is CapacityUnavailable and nothing is created.

const log = createLogger('fleet-test', 'warn');
const validator = loadHetznerValidator();
const testDb = useTestDatabase({ name: 'cloud_fleet' });
const tokens = { a: randomBytes(16).toString('hex'), b: randomBytes(16).toString('hex'), c: randomBytes(16).toString('hex') };

describe('customers spread over several cloud projects', () => {
  let cloud: LocalCloud;
  const clients: Record<'a' | 'b' | 'c', HetznerClient> = {} as never;
  let fleet: CloudFleet;
  let acts: CloudActivities;

  const newCustomer = async () => (await createUser(testDb.db, { email: `f-${randomUUID()}@example.com`, passwordHash: 'x', name: 'Customer' })).id;
  const ensure = (customerId: string) =>
    acts.ensureServer({ customerId, labels: { [cloudLabels.customer]: customerId }, name: serverName(customerId), serverType: 'cx23', location: 'fsn1' });
  /** Every project's servers carrying the customer's label. */
  async function everywhere(customerId: string): Promise<Record<string, number[]>> {
    const out: Record<string, number[]> = {};
    for (const [name, client] of Object.entries(clients)) {
      out[name] = (await client.servers.list({ label_selector: `${cloudLabels.customer}=${customerId}` })).map((s) => s.id);
    }
    return out;
  }

  beforeAll(async () => {
    cloud = await startLocalCloud({
      dataDir: mkdtempSync(path.join(os.tmpdir(), 'berth-fleet-')),
      actionDurationMs: 50,
      onExchange: validator?.onExchange,
      log,
      projects: [
        { name: 'a', token: tokens.a, serverLimit: 1, rateLimit: { limit: 3600, windowMs: 3_600_000 } },
        { name: 'b', token: tokens.b, serverLimit: 2, rateLimit: { limit: 600, windowMs: 3_600_000 } },
        { name: 'c', token: tokens.c, serverLimit: 1 },
      ],
    });
    for (const name of ['a', 'b', 'c'] as const) {
      clients[name] = createHetznerClient({ endpoint: cloud.endpoint, token: tokens[name], actionPoll: { initialMs: 50, maxMs: 200 } });
    }
    // Berth is told a and b hold 1 and 2 servers; c's real limit (1) is unknown to it, as happens when
    // someone uses the project by hand.
    fleet = createCloudFleet({ db: testDb.db, log, projects: [
      { name: 'a', client: clients.a, serverLimit: 1 },
      { name: 'b', client: clients.b, serverLimit: 2 },
      { name: 'c', client: clients.c, serverLimit: null },
    ] });
    acts = createCloudActivities({
      hetzner: clients.a, fleet, db: testDb.db, log,
      masterKeys: masterKeysFrom({ id: 'test-1', base64: randomBytes(32).toString('base64') }),
      userDataVariant: 'local', gatewayHost: 'server-address',
      ssh: { pollMs: 100, waitMs: 20_000, installWaitMs: 60_000 },
    });
  });

  afterAll(async () => {
    await Promise.all(Object.values(clients).map((c) => c.close()));
    await cloud?.stop({ removeData: true });
  });

  it('the local cloud keeps projects apart: own servers, own budget, resource_limit_exceeded past the limit', async () => {
    const create = (client: HetznerClient, name: string) =>
      client.servers.create({ name, server_type: 'cx23', location: 'fsn1', image: 'debian-12', labels: { probe: 'yes' }, start_after_create: false });
    const { server, action } = await create(clients.c, `probe-${randomUUID().slice(0, 8)}`);
    const full = await create(clients.c, `probe-${randomUUID().slice(0, 8)}`).then(() => null, (err: unknown) => err);
    expect(full).toBeInstanceOf(HetznerError);
    expect(full).toMatchObject({ status: 403, code: 'resource_limit_exceeded', type: ErrorType.CapacityUnavailable });
    // Another project neither lists nor reaches it.
    expect((await clients.a.servers.list({ label_selector: 'probe=yes' }))).toEqual([]);
    await expect(clients.a.servers.get(server.id)).rejects.toMatchObject({ code: 'not_found' });
    // Budgets are counted per project: b's limit is its own.
    const b = await fetch(`${cloud.endpoint}/locations`, { headers: { authorization: `Bearer ${tokens.b}` } });
    const a = await fetch(`${cloud.endpoint}/locations`, { headers: { authorization: `Bearer ${tokens.a}` } });
    expect(b.headers.get('ratelimit-limit')).toBe('600');
    expect(a.headers.get('ratelimit-limit')).toBe('3600');
    expect(Number(a.headers.get('ratelimit-remaining'))).toBeGreaterThan(Number(b.headers.get('ratelimit-remaining')));
    // An unknown token is refused.
    expect((await fetch(`${cloud.endpoint}/locations`, { headers: { authorization: 'Bearer nope' } })).status).toBe(401);
    await clients.c.actions.waitFor(action);
    await clients.c.actions.waitFor(await clients.c.servers.delete(server.id));
  });

  it('fills project a, then b; a customer refused by a full project moves on; retries stay where the server is', async () => {
    const first = await newCustomer();
    const s1 = await ensure(first);
    expect(await everywhere(first)).toEqual({ a: [Number(s1.serverId)], b: [], c: [] });

    // a is full by Berth's count: the next customers go to b.
    const second = await newCustomer();
    const third = await newCustomer();
    const s2 = await ensure(second);
    const s3 = await ensure(third);
    expect(await everywhere(second)).toEqual({ a: [], b: [Number(s2.serverId)], c: [] });
    expect(await everywhere(third)).toEqual({ a: [], b: [Number(s3.serverId)], c: [] });
    expect(await fleet.usage()).toEqual({ a: 1, b: 2, c: 0 });

    // A retry (a crash after the server was made, say) finds the same server in the same project.
    expect(await ensure(second)).toEqual(s2);
    expect(await everywhere(second)).toEqual({ a: [], b: [Number(s2.serverId)], c: [] });

    // c holds a server Berth did not make, so c's real limit (1) is reached while Berth counts 0:
    // the next customer is assigned c, refused with resource_limit_exceeded, and moved on — nowhere left.
    await clients.c.servers.create({ name: `by-hand-${randomUUID().slice(0, 8)}`, server_type: 'cx23', location: 'fsn1', image: 'debian-12', start_after_create: false });
    const fourth = await newCustomer();
    const refused = await ensure(fourth).then(() => null, (err: unknown) => err);
    expect(refused).toMatchObject({ type: ErrorType.CapacityUnavailable });
    expect(String((refused as Error).message)).toMatch(/no cloud project has room/);
    expect(await everywhere(fourth)).toEqual({ a: [], b: [], c: [] });
  });

  it('a customer assigned to a project that filled up behind Berth\'s count is moved to one with room', async () => {
    // Make room in b by deleting the third customer's server at the provider, then assign a new
    // customer to a, which is full at the provider: the creation there is refused and it lands in b.
    const customer = await newCustomer();
    await testDb.db.insertInto('cloudAssignments').values({ userId: customer, project: 'a' }).execute();
    const [third] = await testDb.db.selectFrom('servers').select(['userId', 'providerId']).where('deletedAt', 'is', null).orderBy('createdAt', 'desc').limit(1).execute();
    await clients.b.actions.waitFor(await clients.b.servers.delete(Number(third!.providerId)));
    await testDb.db.updateTable('servers').set({ deletedAt: new Date() }).where('providerId', '=', third!.providerId).execute();
    const summary = await ensure(customer);
    expect(await everywhere(customer)).toEqual({ a: [], b: [Number(summary.serverId)], c: [] });
    expect((await testDb.db.selectFrom('cloudAssignments').select('project').where('userId', '=', customer).executeTakeFirst())?.project).toBe('b');
  });
});

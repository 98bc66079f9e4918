import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../lib/log.ts';
import { startLocalCloud, type LocalCloudFaults } from '../../sim/hetzner/local-cloud.ts';
import { hcloudGo, hcloudPython, officialClientsDir } from '../support/official-clients.ts';
import { hetznerConformance } from '../support/openapi.ts';

// Proves: Hetzner's own client libraries — hcloud 2.27 from PyPI and hcloud-go v2.53 from the Go
// module proxy — run Berth's whole cloud surface against the local cloud and read every answer:
// server types with the live API's per-location availability, recommendation and deprecation (and a
// removed type gone), locations, images, SSH keys, a server created with labels and user data, its
// actions, power off/on/shutdown, change type (the disk-shrinking downgrade refused with
// invalid_server_type, an upgrade keeping the disk, and back within it), a snapshot (and a type too
// small for it refused), delete, and the errors not_found, uniqueness_error, resource_unavailable and
// rate_limit_exceeded (which both clients retry only when the code is right). Every answer also
// conforms to the OpenAPI spec copy (the clients' requests are theirs: they send IDs as numbers).

const log = createLogger('hetzner-official-clients-test', 'warn');

/** An OpenSSH public key line for a fresh ed25519 key. */
function publicKeyLine(comment: string): string {
  const der = generateKeyPairSync('ed25519').publicKey.export({ format: 'der', type: 'spki' });
  const str = (b: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, b.length]), b]);
  return `ssh-ed25519 ${Buffer.concat([str(Buffer.from('ssh-ed25519')), str(der.subarray(der.length - 32))]).toString('base64')} ${comment}`;
}

const announced = '2026-01-01T00:00:00Z';
const unavailableAfter = '2026-03-01T00:00:00Z';
const faults: LocalCloudFaults = {
  // The first request (GET /locations) meets one 429.
  endpoints: { 'GET /locations': { rateLimit: 1, times: 1 } },
  unavailable: [{ serverType: 'cx43', location: 'hel1' }],
  removedServerTypes: ['cax21'],
  deprecatedServerTypes: [{ serverType: 'cpx12', location: 'fsn1', announced, unavailableAfter }],
};

/** Runs one client's program against a fresh local cloud; returns what it saw and what the cloud recorded. */
async function drive(prefix: string, command: string, args: string[]) {
  const conformance = hetznerConformance({ checkRequests: false });
  const cloud = await startLocalCloud({
    dataDir: mkdtempSync(path.join(os.tmpdir(), `berth-official-${prefix}-`)), actionDurationMs: 50, faults, onExchange: conformance.validator?.onExchange, log,
  });
  try {
    const check = {
      prefix, publicKey: publicKeyLine(prefix), userData: '#cloud-config\n{"write_files":[{"path":"/home/berth-check.txt","content":"hi"}]}',
      describeTypes: ['cx33', 'cpx12', 'cax21', 'cx43'], unavailable: { serverType: 'cx43', location: 'hel1' }, removed: 'cax21',
    };
    // Not execFileSync: the local cloud answers from this process's event loop.
    const child = spawn(command, args, { env: { ...process.env, HCLOUD_ENDPOINT: cloud.endpoint, HCLOUD_TOKEN: 'official-client', HCLOUD_CHECK: JSON.stringify(check) } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    if (code !== 0) throw new Error(`${command} exited ${code}:\n${stderr.slice(-4000)}`);
    const servers = await fetch(`${cloud.endpoint}/servers`, { headers: { authorization: 'Bearer t' } }).then((r) => r.json() as Promise<{ servers: unknown[] }>);
    return { seen: JSON.parse(stdout) as Record<string, unknown>, requests: [...cloud.requests], conformance, left: servers.servers };
  } finally {
    await cloud.stop({ removeData: true });
  }
}

/** GET /locations met 429s until the injected reset, then one 200 (a retry inside the block sees another 429). */
function rateLimitedThenAnswered(requests: { template: string; status: number }[]): boolean {
  const statuses = requests.filter((r) => r.template === '/locations').map((r) => r.status);
  return statuses[0] === 429 && statuses.at(-1) === 200 && statuses.filter((s) => s === 200).length === 1 && statuses.every((s) => s === 429 || s === 200);
}

const state = (status: string, serverType: string, disk: number) => ({ status, serverType, disk });
const location = (available: boolean, deprecation: null | { announced: number; unavailableAfter: number } = null) =>
  ({ available, recommended: available && deprecation === null, deprecation });
const epoch = (iso: string) => Date.parse(iso) / 1000;

function expected(prefix: string) {
  return {
    locations: ['ash', 'fsn1', 'hel1', 'nbg1'],
    serverTypes: {
      cx33: { disk: 80, architecture: 'x86', storageType: 'local', locations: { fsn1: location(true), nbg1: location(true), hel1: location(true) } },
      cpx12: {
        disk: 40, architecture: 'x86', storageType: 'local',
        locations: {
          fsn1: location(false, { announced: epoch(announced), unavailableAfter: epoch(unavailableAfter) }),
          nbg1: location(true), hel1: location(true), ash: location(true),
        },
      },
      cax21: null,
      cx43: { disk: 160, architecture: 'x86', storageType: 'local', locations: { fsn1: location(true), nbg1: location(true), hel1: location(false) } },
    },
    image: { name: 'debian-12', type: 'system' },
    sshKey: { name: `${prefix}-key`, labels: { 'berth-check': prefix }, byName: true, bySelector: [`${prefix}-key`], duplicate: 'uniqueness_error' },
    server: {
      ...state('running', 'cx33', 80), location: 'fsn1', labels: { 'berth-customer': prefix, 'berth-check': 'yes' }, image: 'debian-12',
      nextActions: 1, bySelector: [`${prefix}-server`], duplicate: 'uniqueness_error',
    },
    power: { shutdown: 'off', poweron: 'running', poweroff: 'off' },
    changeType: { downgrade: 'invalid_server_type', upgradeKeepingDisk: state('off', 'cx43', 80), backWithinDisk: state('off', 'cx33', 80) },
    snapshot: { type: 'snapshot', status: 'available', diskSize: 80, labels: { 'berth-check': prefix }, createdFrom: `${prefix}-server`, smallerType: 'invalid_input', smallerTypeMessage: 'image disk is bigger than server type disk (80 GB > 40 GB)' },
    errors: { notFound: 'not_found', unavailable: 'resource_unavailable', removed: 'invalid_input' },
    deleted: { server: 'not_found', snapshot: 'not_found', sshKey: 'not_found' },
  };
}

describe("Hetzner's official clients against the local cloud", () => {
  it('hcloud (Python, PyPI) runs the whole surface', async () => {
    const python = await hcloudPython();
    const { seen, requests, conformance, left } = await drive('py', python, [path.join(officialClientsDir, 'hcloud_python.py')]);
    expect(seen).toEqual(expected('py'));
    // The client retried the 429 (it does so only for the code rate_limit_exceeded) and then got its answer.
    expect(rateLimitedThenAnswered(requests)).toBe(true);
    expect(left).toEqual([]);
    if (!conformance.skip) expect(conformance.require().problems).toEqual([]);
  });

  it('hcloud-go (Go module proxy) runs the whole surface', async () => {
    const go = await hcloudGo();
    const { seen, requests, conformance, left } = await drive('go', go, []);
    expect(seen).toEqual({ ...expected('go'), rateLimited: 'rate_limit_exceeded' });
    // One 429 for the client told not to retry, then the default client's answer.
    expect(rateLimitedThenAnswered(requests)).toBe(true);
    // It waits for actions by listing them by id (GET /actions?id=…), as it does against Hetzner.
    expect(requests.some((r) => r.template === '/actions' && r.status === 200)).toBe(true);
    expect(left).toEqual([]);
    if (!conformance.skip) expect(conformance.require().problems).toEqual([]);
  });
});

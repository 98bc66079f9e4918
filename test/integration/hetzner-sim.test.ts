import { existsSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, utils } from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHetznerClient, type HetznerClient } from '../../activities/cloud/hetzner/client.ts';
import { createLogger } from '../../lib/log.ts';
import { portOpen } from '../../scripts/services/process.ts';
import { startLocalCloud, type LocalCloud } from '../../sim/hetzner/local-cloud.ts';
import { hetznerConformance } from '../support/openapi.ts';

// Proves: a created server is a real sshd on its own 127.0.x.y answering with the host key from the
// user data and accepting the customer's key; cloud-init users, write_files and runcmd take effect;
// power off/on stops and starts it with files kept; a snapshot restores files into a new server;
// delete removes the server's data; stopping the cloud leaves no sshd behind.

const log = createLogger('hetzner-sim-test', 'warn');
const conformance = hetznerConformance();
const validator = conformance.validator;

function keyPair() {
  const { private: privateKey, public: publicKey } = utils.generateKeyPairSync('ed25519');
  return { privateKey, publicKey };
}

/** The key blob of an OpenSSH public key line, as ssh2's hostVerifier receives it. */
function publicBlob(publicKey: string): Buffer {
  return Buffer.from(publicKey.trim().split(/\s+/)[1]!, 'base64');
}

/** Runs a command over SSH, accepting only the pinned host key. */
function sshExec(host: string, username: string, privateKey: string, pinnedHostKey: string, command: string): Promise<string> {
  const expected = publicBlob(pinnedHostKey);
  return new Promise((resolve, reject) => {
    const conn = new Client();
    conn.on('ready', () => {
      conn.exec(command, (err, stream) => {
        if (err) return reject(err);
        let out = '';
        stream.on('data', (d: Buffer) => (out += d.toString()));
        stream.stderr.on('data', (d: Buffer) => (out += d.toString()));
        stream.on('close', () => {
          conn.end();
          resolve(out);
        });
      });
    });
    conn.on('error', reject);
    conn.connect({ host, port: 22, username, privateKey, readyTimeout: 20_000, hostVerifier: (key: Buffer) => key.equals(expected) });
  });
}

function userData(hostKey: { privateKey: string; publicKey: string }, customerKey: string, extra: Record<string, unknown> = {}): string {
  return '#cloud-config\n' + JSON.stringify({
    ssh_keys: { ed25519_private: hostKey.privateKey, ed25519_public: hostKey.publicKey },
    users: [{ name: 'berth', ssh_authorized_keys: [customerKey], shell: '/bin/sh' }],
    ...extra,
  });
}

describe('local Hetzner cloud servers', () => {
  let cloud: LocalCloud;
  let client: HetznerClient;
  const customer = keyPair();
  const hostKey = keyPair();
  let serverId = 0;
  let ip = '';

  beforeAll(async () => {
    cloud = await startLocalCloud({
      dataDir: mkdtempSync(path.join(os.tmpdir(), 'berth-hz-sim-')),
      actionDurationMs: 50,
      onExchange: validator?.onExchange,
      log,
    });
    client = createHetznerClient({ endpoint: cloud.endpoint, token: 't', actionPoll: { initialMs: 50, maxMs: 200 } });
  });

  let stopped = false;
  afterAll(async () => {
    await client?.close();
    if (!stopped) await cloud?.stop({ removeData: true });
  });

  it('boots a real sshd with the pinned host key, the customer login, files and commands from cloud-init', async () => {
    const rootKey = keyPair();
    const key = await client.sshKeys.create({ name: 'root', public_key: rootKey.publicKey });
    const created = await client.servers.create({
      name: 'sim-1', server_type: 'cx23', image: 'debian-12', ssh_keys: [key.name],
      user_data: userData(hostKey, customer.publicKey, {
        write_files: [{ path: '/home/berth/hello.txt', content: 'hello from cloud-init\n', owner: 'berth:berth', permissions: '0600' }],
        runcmd: ['echo ran > /home/berth/runcmd.txt', ['chown', 'berth:berth', '/home/berth/runcmd.txt']],
        package_update: true,
      }),
    });
    await client.actions.waitFor(created.action);
    for (const a of created.next_actions) await client.actions.waitFor(a);
    serverId = created.server.id;
    ip = created.server.public_net.ipv4!.ip;
    expect(Number(ip.split('.')[3])).toBeGreaterThanOrEqual(10);

    const whoami = await sshExec(ip, 'berth', customer.privateKey, hostKey.publicKey, 'id -un; cat ~/hello.txt; echo $HOME');
    expect(whoami).toBe('berth\nhello from cloud-init\n/home/berth\n');
    // runcmd runs after boot, as on a real server: wait for cloud-init's boot-finished marker.
    let finished = '';
    for (let i = 0; i < 50 && !finished.includes('done'); i++) {
      finished = await sshExec(ip, 'berth', customer.privateKey, hostKey.publicKey, 'test -f /var/lib/cloud/instance/boot-finished && echo done; true');
    }
    expect(await sshExec(ip, 'berth', customer.privateKey, hostKey.publicKey, 'cat ~/runcmd.txt')).toBe('ran\n');
    // The project SSH key named at create time logs in as root.
    expect(await sshExec(ip, 'root', rootKey.privateKey, hostKey.publicKey, 'id -u; ls /home')).toBe('0\nberth\n');
  });

  it('refuses a connection when the server shows a host key other than the pinned one', async () => {
    const other = keyPair();
    await expect(sshExec(ip, 'berth', customer.privateKey, other.publicKey, 'true')).rejects.toThrow();
    // And a key not in authorized_keys is not let in.
    await expect(sshExec(ip, 'berth', keyPair().privateKey, hostKey.publicKey, 'true')).rejects.toThrow(/authentication/i);
  });

  it('power off stops the sshd, power on starts it again with the files kept', async () => {
    await sshExec(ip, 'berth', customer.privateKey, hostKey.publicKey, 'echo precious > ~/data.txt; nohup sleep 611 >/dev/null 2>&1 &');
    await client.actions.waitFor(await client.servers.powerOff(serverId));
    expect(await portOpen(22, ip)).toBe(false);
    await client.actions.waitFor(await client.servers.powerOn(serverId));
    expect(await sshExec(ip, 'berth', customer.privateKey, hostKey.publicKey, 'cat ~/data.txt; pgrep -c -f "slee[p] 611" || true')).toBe('precious\n0\n');
  });

  it('a snapshot keeps the files for a new server created from it; delete removes the old server and its data', async () => {
    const snap = await client.servers.createImage(serverId, { description: 'hibernate', labels: { 'berth-customer': 'c9' } });
    await client.actions.waitFor(snap.action);
    const newHostKey = keyPair();
    const restored = await client.servers.create({
      name: 'sim-2', server_type: 'cx23', image: String(snap.image.id), labels: { 'berth-customer': 'c9' },
      user_data: userData(newHostKey, customer.publicKey),
    });
    await client.actions.waitFor(restored.action);
    for (const a of restored.next_actions) await client.actions.waitFor(a);
    const ip2 = restored.server.public_net.ipv4!.ip;
    expect(ip2).not.toBe(ip);
    expect(await sshExec(ip2, 'berth', customer.privateKey, newHostKey.publicKey, 'cat ~/data.txt ~/hello.txt')).toBe('precious\nhello from cloud-init\n');
    // The old host key is gone from the restored server (cloud-init replaced it with the new one).
    await expect(sshExec(ip2, 'berth', customer.privateKey, hostKey.publicKey, 'true')).rejects.toThrow();

    const dir = cloud.machine(serverId)!.opts.dir;
    expect(existsSync(dir)).toBe(true);
    await client.actions.waitFor(await client.servers.delete(serverId));
    expect(existsSync(dir)).toBe(false);
    expect(await portOpen(22, ip)).toBe(false);
    expect((await client.servers.list()).map((s) => s.name)).toEqual(['sim-2']);
  });

  it.skipIf(conformance.skip)('every response the local cloud gave conforms to the OpenAPI spec', () => {
    const checked = conformance.require();
    expect(checked.checked).toBeGreaterThan(10);
    expect(checked.problems).toEqual([]);
  });

  it('stopping the cloud stops every sshd it started', async () => {
    const ips = (await client.servers.list()).map((s) => s.public_net.ipv4!.ip);
    // The check below must have servers to look at: the one restored from the snapshot still runs.
    expect(ips).toHaveLength(1);
    for (const address of ips) expect(await portOpen(22, address)).toBe(true);
    stopped = true;
    await cloud.stop({ removeData: true });
    for (const address of ips) expect(await portOpen(22, address)).toBe(false);
  });
});

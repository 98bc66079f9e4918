/**
 * A Temporal worker, run as `node --expose-gc`, whose activity opens and closes SSH connections with
 * Berth's own connector (ssh2, pinned host key), forcing garbage collection between them, then goes
 * through the key exchanges of a long-lived worker's thousands of connections and rekeys: ssh2's own
 * cipher factory, as each NEWKEYS calls it, with only the latest few ciphers alive while the collector
 * runs by itself. Configured by BERTH_SSH_CHURN_WORKER (JSON); prints "ready" when polling. If a loaded
 * native addon aborts the process when the collector frees its objects, this process dies (exit 134).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { connectSsh, type SshTarget } from '../../activities/backups/ssh.ts';
import { runRemote } from '../../activities/backups/ssh.ts';
import { isObjectWrapAddon, loadedNativeAddons } from '../../lib/native-addons.ts';
import type { SshChurnActivities } from './ssh-churn-workflow.ts';

export interface SshChurnWorkerConfig {
  temporalAddress: string;
  taskQueue: string;
  target: Omit<SshTarget, 'privateKey'> & { privateKeyPath: string };
}

const config = JSON.parse(process.env.BERTH_SSH_CHURN_WORKER ?? '') as SshChurnWorkerConfig;
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');
const target: SshTarget = { ...config.target, privateKey: readFileSync(config.target.privateKeyPath) };

/** ssh2's cipher factory (lib/protocol/crypto.js), the one its key exchange calls; not part of its public API. */
interface Ssh2Crypto {
  CIPHER_INFO: Record<string, { keyLen: number; ivLen: number }>;
  createCipher(config: { outbound: Record<string, unknown> }): { free(): void };
}
const ssh2Crypto = createRequire(import.meta.url)('ssh2/lib/protocol/crypto.js') as Ssh2Crypto;

/** `count` key exchanges' worth of AES-GCM ciphers, keeping only the latest `alive`, as connections come and go. */
function keyExchanges(count: number, alive = 4): void {
  const info = ssh2Crypto.CIPHER_INFO['aes128-gcm@openssh.com']!;
  const live: { free(): void }[] = [];
  for (let i = 0; i < count; i++) {
    live.push(ssh2Crypto.createCipher({ outbound: {
      onWrite: () => {}, cipherInfo: info, cipherKey: Buffer.alloc(info.keyLen, i), cipherIV: Buffer.alloc(info.ivLen, i), seqno: 0,
    } }));
    if (live.length > alive) live.shift()!.free();
  }
}

const activities: SshChurnActivities = {
  async churnSsh({ connections }) {
    for (let i = 0; i < connections; i++) {
      const client = await connectSsh(target);
      const { code } = await runRemote(client, 'true');
      if (code !== 0) throw new Error(`remote command exited ${code}`);
      client.end();
      await new Promise<void>((resolve) => client.once('close', () => resolve()));
      // The connection's ciphers are garbage now: collect them, as the collector eventually will.
      if (i % 5 === 4) gc();
    }
    for (let i = 0; i < 3; i++) {
      gc();
      await new Promise((resolve) => setImmediate(resolve));
    }
    keyExchanges(5000);
    gc();
    return { connections, loadedAddons: loadedNativeAddons().map((file) => ({ file, objectWrap: isObjectWrapAddon(file) })) };
  },
};

Runtime.install({ logger: new DefaultLogger('ERROR') });
const connection = await NativeConnection.connect({ address: config.temporalAddress });
const worker = await Worker.create({
  connection,
  taskQueue: config.taskQueue,
  workflowsPath: path.join(path.dirname(fileURLToPath(import.meta.url)), 'ssh-churn-workflow.ts'),
  activities,
});
process.stdout.write('ready\n');
await worker.run();
await connection.close();

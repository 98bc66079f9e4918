import path from 'node:path';
import { cacheDir } from '../../lib/paths.ts';
import { freePort, httpOk, startProcess, type LineSink, type ManagedProcess } from '../../lib/process.ts';

/** A running stripe-mock: Stripe's API shapes (from its OpenAPI spec), no state, no keys. */
export interface StripeMockServer {
  /** http://127.0.0.1:<port> */
  url: string;
  host: string;
  port: number;
  process: ManagedProcess;
  stop(): Promise<void>;
}

/**
 * Starts stripe-mock (built by scripts/bootstrap into .cache/bin) on a free loopback port, HTTP
 * only, and waits until its HTTP port answers. stripe-mock validates each request against Stripe's
 * OpenAPI spec and answers with fixture objects, so it checks the shape of our calls, not their effect.
 */
export async function startStripeMock(opts: { port?: number; sink?: LineSink } = {}): Promise<StripeMockServer> {
  const port = opts.port ?? (await freePort());
  const host = '127.0.0.1';
  const url = `http://${host}:${port}`;
  const process = await startProcess({
    name: 'stripe-mock',
    command: path.join(cacheDir, 'bin', 'stripe-mock'),
    args: ['-http-addr', `${host}:${port}`],
    sink: opts.sink,
    // Any HTTP answer (stripe-mock says 401 without a key) means it serves.
    ready: () => httpOk(`${url}/v1/customers`),
    readyTimeoutMs: 30_000,
  });
  return { url, host, port, process, stop: () => process.stop() };
}

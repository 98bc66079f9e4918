/**
 * An HTTP proxy in front of stripe-mock that records each request's method, path and
 * Idempotency-Key: stripe-mock checks the shape of a call, this records which side effects were asked
 * for and under which key. `failNext(n)` drops the connection of the next n requests after the
 * upstream answered, as a network fault would: the caller must retry under the same key.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedRequest {
  method: string;
  path: string;
  idempotencyKey: string | undefined;
  status: number;
}

export interface RecordingProxy {
  port: number;
  requests: RecordedRequest[];
  failNext(count: number): void;
  close(): Promise<void>;
}

export async function startRecordingProxy(upstream: { host: string; port: number }): Promise<RecordingProxy> {
  const requests: RecordedRequest[] = [];
  let failing = 0;
  const server = http.createServer((req, res) => {
    const upstreamReq = http.request({ host: upstream.host, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (upstreamRes) => {
      requests.push({ method: req.method ?? '', path: (req.url ?? '').split('?')[0]!, idempotencyKey: req.headers['idempotency-key'] as string | undefined, status: upstreamRes.statusCode ?? 0 });
      if (failing > 0) {
        failing -= 1;
        upstreamRes.resume();
        req.socket.destroy();
        return;
      }
      res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
      upstreamRes.pipe(res);
    });
    upstreamReq.on('error', () => res.destroy());
    req.pipe(upstreamReq);
  });
  server.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    failNext: (count) => { failing = count; },
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

/**
 * Password hashing cost at Berth's argon2id setting (m = 19 MiB, t = 2, p = 1), and what a sign-in
 * flood does to the process: N hashes offered at once through the bounded queue, with the event loop's
 * delay measured meanwhile. `node bench/passwords.ts [flood size]`; results in docs/benchmarks.md.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createHashingQueue, hashPassword, HashingBusy } from '../api/auth/passwords.ts';

const flood = Number(process.argv[2] ?? 200);
const sequential: number[] = [];
for (let i = 0; i < 10; i++) {
  const started = performance.now();
  await hashPassword(`password ${i}`);
  sequential.push(performance.now() - started);
}
sequential.sort((a, b) => a - b);
process.stdout.write(`one hash: median ${sequential[5]!.toFixed(1)} ms\n`);

const queue = createHashingQueue({ concurrency: 2, maxWaiting: 64 });
const loop = monitorEventLoopDelay({ resolution: 10 });
loop.enable();
const rssBefore = process.memoryUsage().rss;
let peakRss = rssBefore;
const sampler = setInterval(() => { peakRss = Math.max(peakRss, process.memoryUsage().rss); }, 10);
const started = performance.now();
const outcomes = await Promise.all(Array.from({ length: flood }, (_, i) => hashPassword(`flood ${i}`, queue).then(() => 'hashed', (err: unknown) => {
  if (err instanceof HashingBusy) return 'busy';
  throw err;
})));
const seconds = (performance.now() - started) / 1000;
clearInterval(sampler);
loop.disable();
const hashed = outcomes.filter((o) => o === 'hashed').length;
process.stdout.write(`flood of ${flood} at once: ${hashed} hashed, ${flood - hashed} answered busy at once, in ${seconds.toFixed(2)} s `
  + `(${(hashed / seconds).toFixed(1)} hashes/s); event loop delay p99 ${(loop.percentile(99) / 1e6).toFixed(1)} ms, `
  + `max ${(loop.max / 1e6).toFixed(1)} ms; RSS +${((peakRss - rssBefore) / 1e6).toFixed(0)} MB\n`);

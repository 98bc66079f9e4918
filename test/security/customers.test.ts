/**
 * Two paying customers, each with a real server in the local cloud. Every route and socket is tried
 * with the other customer's session (an IDOR matrix over the whole route table), and one customer's
 * server turns hostile: its assistant answers without end, its shell prints without end, and the web
 * process's memory stays bounded; a browser typing without end before the shell is there is cut off.
 */
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import { beforeAll, describe, expect, test } from 'vitest';
import pg from 'pg';
import { WebSocket } from 'ws';
import routes from '../../web/routes.ts';
import { berth, createAccount, postForm, visit, type Account } from './support.ts';

const { appUrl } = berth;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Customer extends Account {
  id: string;
  ipv4: string;
}

/** Subscribes through the billing page and the local checkout, then waits for the server to be up. */
async function subscribe(account: Account): Promise<Customer> {
  const billing = await visit('/billing', account.cookie);
  const requestId = /name="requestId" value="([\w-]+)"/.exec(billing.body)![1]!;
  const checkout = await postForm(`${appUrl}/billing`, { intent: 'checkout', plan: 'starter', requestId }, { cookie: account.cookie });
  const location = checkout.headers.get('location') ?? checkout.headers.get('x-remix-redirect') ?? '';
  const checkoutPath = new URL(location, appUrl).pathname;
  expect(checkoutPath).toMatch(/^\/local-billing\/checkout\//);
  const paid = await postForm(`${appUrl}${checkoutPath}/pay`, {}, { cookie: account.cookie });
  expect(paid.status).toBe(303);
  const deadline = Date.now() + 150_000;
  for (;;) {
    const page = (await visit('/dashboard', account.cookie)).body;
    const ipv4 = /<dt>Address<\/dt><dd>(127\.0\.\d+\.\d+)/.exec(page)?.[1];
    if (page.includes('data-testid="stage">Active') && ipv4) return { ...account, ipv4, id: await userIdOf(account.email) };
    if (Date.now() > deadline) throw new Error(`the server of ${account.email} did not come up`);
    await sleep(2_000);
  }
}

async function userIdOf(email: string): Promise<string> {
  const db = new pg.Client({ connectionString: berth.databaseUrl });
  await db.connect();
  try {
    return (await db.query<{ id: string }>('select id from users where email = $1', [email])).rows[0]!.id;
  } finally {
    await db.end();
  }
}

/** The dashboard says the server runs (React may put a comment between the text parts). */
const running = (page: string) => /·\s*(?:<!-- -->)?\s*running/.test(page);

let a: Customer;
let b: Customer;
beforeAll(async () => {
  const [accountA, accountB] = [await createAccount({ name: 'Alice Anderson' }), await createAccount({ name: 'Bob Brown' })];
  [a, b] = await Promise.all([subscribe(accountA), subscribe(accountB)]);
}, 300_000);

/** Opens a live socket with `cookie`; resolves with the socket once open. */
function openSocket(path: '/ws/terminal' | '/ws/chat', cookie: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${appUrl.replace('http', 'ws')}${path}`, { headers: { cookie, origin: appUrl } });
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade answered ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

/** Runs a shell command in a terminal socket and returns what the shell printed until `marker`. */
async function inTerminal(cookie: string, command: string, marker: string): Promise<string> {
  const ws = await openSocket('/ws/terminal', cookie);
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { ws.terminate(); reject(new Error(`no ${marker} in: ${out.slice(-500)}`)); }, 30_000);
    ws.on('message', (data, binary) => {
      if (!binary) {
        if (JSON.parse(String(data)).type === 'ready') ws.send(Buffer.from(`${command}; echo ${marker}-$((1+1))\n`));
        return;
      }
      out += String(data);
      if (out.includes(`${marker}-2`)) {
        clearTimeout(timer);
        ws.close();
        resolve(out);
      }
    });
  });
}

describe('another customer\'s session (IDOR matrix)', () => {
  /** Every page of the web app, from its route table, with what B's session must get there. */
  const pagePaths = routes.map((r) => (r.index ? '/' : `/${r.path}`));
  const expressPaths = ['/healthz', '/readyz', '/dev/mail'];

  test('the matrix covers every route the app has', () => {
    expect(pagePaths.sort()).toEqual(['/', '/billing', '/billing/canceled', '/billing/success', '/chat', '/confirm-password', '/dashboard',
      '/forgot-password', '/login', '/logout', '/register', '/reset-password', '/settings', '/terminal', '/verify-email'].sort());
  });

  test('no page, nor its data, shows one customer anything of the other\'s', async () => {
    const secretsOfA = [a.email, a.name, a.ipv4, a.id];
    for (const path of [...pagePaths, ...pagePaths.map((p) => `${p === '/' ? '/_root' : p}.data`), ...expressPaths]) {
      const res = await visit(path, b.cookie);
      for (const secret of secretsOfA) expect(res.body, `${path} shows ${secret}`).not.toContain(secret);
    }
  });

  test('the local checkout and portal pages of one customer are not the other\'s to see', async () => {
    const portal = await visit(`/local-billing/portal/${a.id}`, b.cookie);
    expect(portal.body).not.toContain('starter');
    expect(portal.body).toContain('No local subscription.');
  });

  test('a command sent with one customer\'s session acts on their own server only, whatever ids the form carries', async () => {
    expect(running((await visit('/dashboard', a.cookie)).body)).toBe(true);
    const res = await postForm(`${appUrl}/dashboard`, { command: 'power_off', userId: a.id, customerId: a.id, serverId: a.ipv4 }, { cookie: b.cookie });
    expect(res.status).toBe(200);
    await sleep(3_000);
    expect(running((await visit('/dashboard', a.cookie)).body)).toBe(true);
    await postForm(`${appUrl}/dashboard`, { command: 'power_on' }, { cookie: b.cookie });
  });

  test('a terminal with one customer\'s session reaches their own server', async () => {
    const out = await inTerminal(a.cookie, 'echo "at $SSH_CONNECTION"', 'done-a');
    expect(out).toContain(a.ipv4);
    expect(out).not.toContain(b.ipv4);
  });
});

describe('a hostile server', () => {
  /** Resident memory of a process, in MB, from /proc. */
  async function rssMb(pid: number): Promise<number> {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) / 1024;
  }
  // The tests below take the customer's server over one after the other; the last one leaves its
  // shell flooding, so it comes last.

  test('keystrokes sent before the shell is ready are kept up to a paste\'s worth, past that the socket closes', async () => {
    // A little typed early reaches the shell once it is ready.
    const early = await openSocket('/ws/terminal', a.cookie);
    early.send(Buffer.from('echo typed-early-$((2+3))\n'));
    let out = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no early input in: ${out.slice(-300)}`)), 30_000);
      early.on('message', (data, binary) => {
        if (binary) out += String(data);
        if (out.includes('typed-early-5')) { clearTimeout(timer); resolve(); }
      });
    });
    early.close();
    // More than 64 KiB before the shell is there: refused, not buffered.
    const flood = await openSocket('/ws/terminal', a.cookie);
    const said: string[] = [];
    flood.on('message', (data, binary) => { if (!binary) said.push(String(data)); });
    const closed = new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the socket stayed open')), 30_000);
      flood.once('close', (code) => { clearTimeout(timer); resolve(code); });
    });
    for (let i = 0; i < 5; i++) flood.send(Buffer.alloc(16 * 1024, 0x61));
    expect(await closed).toBe(1009);
    expect(said.join('\n')).toContain('Too much was typed before the terminal was ready');
  });

  test('an assistant that answers without end costs the web process bounded memory, and the customer gets an error', async () => {
    // The customer owns the server: they replace the assistant with one whose answer never ends
    // (where the local cloud's stand-in listens: the server's own address, port 18789).
    const gatewayPort = 18789;
    const flooder = `require('http').createServer((q, s) => { s.writeHead(200, { 'content-type': 'application/json' });`
      + ` s.write('{"choices":[{"message":{"content":"'); const c = Buffer.alloc(65536, 97);`
      + ` const w = () => { while (s.write(c)); }; s.on('drain', w); w(); }).listen(${gatewayPort}, process.argv[1])`;
    await inTerminal(a.cookie, `kill $(cut -d ' ' -f 1 ~/.openclaw/standin.ready); sleep 1; `
      + `setsid nohup node -e ${JSON.stringify(flooder)} "$(cat ~/.openclaw/standin.host)" >/dev/null 2>&1 </dev/null & sleep 1`, 'flooder-up');
    // It does flood: a direct look (the local cloud's servers share this machine's network).
    const head = await new Promise<number>((resolve, reject) => {
      const req = http.request({ host: a.ipv4, port: gatewayPort, method: 'POST', path: '/v1/chat/completions' }, (res) => {
        let n = 0;
        res.on('data', (c: Buffer) => { n += c.length; if (n > 4 * 1024 * 1024) { req.destroy(); resolve(n); } });
      });
      req.on('error', reject);
      req.end('{}');
    });
    expect(head).toBeGreaterThan(4 * 1024 * 1024);

    const before = await rssMb(berth.webPid);
    const ws = await openSocket('/ws/chat', a.cookie);
    let peak = before;
    const sampling = setInterval(() => { void rssMb(berth.webPid).then((mb) => { peak = Math.max(peak, mb); }, () => {}); }, 100);
    try {
      const answer = await new Promise<{ type: string; id: string; message?: string }>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no answer to the question in 30 s')), 30_000);
        ws.on('message', (data, binary) => {
          if (binary) return;
          const message = JSON.parse(String(data)) as { type: string; id: string };
          if (message.id === 'q1') { clearTimeout(timer); resolve(message); }
        });
        ws.send(JSON.stringify({ type: 'ask', id: 'q1', messages: [{ role: 'user', content: 'hello?' }] }));
      });
      expect(answer).toMatchObject({ type: 'error', id: 'q1', message: 'Your assistant did not answer; please try again in a minute.' });
    } finally {
      clearInterval(sampling);
      ws.close();
    }
    expect(peak - before, `web RSS ${before.toFixed(0)} → peak ${peak.toFixed(0)} MB`).toBeLessThan(100);
  });

  test('a shell that prints without end to a browser that reads nothing costs the web process bounded memory', async () => {
    // The customer owns the server: their shell startup file now floods every interactive shell.
    await inTerminal(a.cookie, `printf 'yes berth-flood-line-of-output\\n' | tee -a ~/.bashrc >> ~/.profile`, 'flood-set');
    const before = await rssMb(berth.webPid);
    const ws = await openSocket('/ws/terminal', a.cookie);
    // A browser that stops reading: nothing is taken from the socket.
    (ws as unknown as { _socket: { pause(): void } })._socket.pause();
    let peak = before;
    for (let i = 0; i < 20; i++) {
      await sleep(500);
      peak = Math.max(peak, await rssMb(berth.webPid));
    }
    // It did flood: once the browser reads again, the shell's output is still coming.
    let seen = '';
    ws.on('message', (data, binary) => { if (binary && seen.length < 1e6) seen += String(data); });
    (ws as unknown as { _socket: { resume(): void } })._socket.resume();
    await sleep(1_000);
    ws.terminate();
    expect(seen).toContain('berth-flood-line-of-output');
    expect(peak - before, `web RSS ${before.toFixed(0)} → peak ${peak.toFixed(0)} MB`).toBeLessThan(100);
  });
});

// Berth's local stand-in for the OpenClaw gateway (no model runs in the local cloud). It reads the
// same ~/.openclaw/openclaw.json that Berth writes for OpenClaw and serves the same surface Berth
// uses: POST /v1/chat/completions (OpenAI-compatible, Bearer gateway token, only when
// gateway.http.endpoints.chatCompletions.enabled) and GET /health. Plain JavaScript with only Node
// built-ins, so any Node >= 18 on the server runs it without a build step.
//
// Usage: node assistant.mjs [--version] [--host <address>] [--config <file>]
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';

export const version = 'berth-standin/1.0.0';

const args = process.argv.slice(2);
if (args.includes('--version')) {
  process.stdout.write(`${version}\n`);
  process.exit(0);
}
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] ? args[i + 1] : fallback;
};
const stateDir = path.join(os.homedir(), '.openclaw');
const configFile = option('--config', path.join(stateDir, 'openclaw.json'));
const config = JSON.parse(readFileSync(configFile, 'utf8'));
const gateway = config.gateway ?? {};
const token = gateway.auth?.mode === 'token' ? String(gateway.auth.token ?? '') : '';
const port = Number(gateway.port ?? 18789);
const host = option('--host', '127.0.0.1');
const chatEnabled = gateway.http?.endpoints?.chatCompletions?.enabled === true;
const model = config.agents?.defaults?.model?.primary ?? 'standin/echo';

const digest = (s) => createHash('sha256').update(s).digest();
const authorized = (header) => {
  if (!token) return false;
  const presented = typeof header === 'string' && header.startsWith('Bearer ') ? header.slice(7) : '';
  return timingSafeEqual(digest(presented), digest(token));
};
const send = (res, status, body) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};
const error = (res, status, message, type) => send(res, status, { error: { message, type, code: null } });

let served = 0;
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    if (req.method === 'GET' && req.url === '/health') return send(res, 200, { ok: true, version });
    if (req.url !== '/v1/chat/completions') return error(res, 404, 'not found', 'invalid_request_error');
    if (!chatEnabled) return error(res, 404, 'the chat completions endpoint is disabled', 'invalid_request_error');
    if (req.method !== 'POST') return error(res, 405, 'use POST', 'invalid_request_error');
    if (!authorized(req.headers.authorization)) return error(res, 401, 'invalid gateway token', 'authentication_error');
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      return error(res, 400, 'body must be JSON', 'invalid_request_error');
    }
    const messages = Array.isArray(body?.messages) ? body.messages : [];
    const lastUser = [...messages].reverse().find((m) => m?.role === 'user');
    if (!lastUser) return error(res, 400, 'messages must contain a user message', 'invalid_request_error');
    const content = `stand-in assistant heard: ${String(lastUser.content)}`;
    served += 1;
    send(res, 200, {
      id: `chatcmpl-standin-${process.pid}-${served}`,
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model: typeof body.model === 'string' ? body.model : model,
      choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
      usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 },
    });
  });
});
server.listen(port, host, () => {
  // The apply script waits for this file: the gateway answers once it exists.
  writeFileSync(path.join(stateDir, 'standin.ready'), `${process.pid} ${host}:${port}\n`);
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

import { pino, type Logger } from 'pino';

export type { Logger };

/** Keys whose values never reach a log line, wherever they appear in a logged object. */
const redactPaths = [
  'password', 'passwordHash', 'token', 'secret', 'apiKey', 'privateKey', 'authorization', 'cookie',
  '*.password', '*.passwordHash', '*.token', '*.secret', '*.apiKey', '*.privateKey', '*.authorization', '*.cookie',
  'headers.authorization', 'headers.cookie', 'req.headers.authorization', 'req.headers.cookie',
];

/** A structured logger for one process (api, worker, sim, ...). */
export function createLogger(name: string, level = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino({ name, level, redact: { paths: redactPaths, censor: '[redacted]' } });
}

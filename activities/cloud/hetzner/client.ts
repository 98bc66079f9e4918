import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request, errors as undiciErrors } from 'undici';
import { ErrorType, errorMessage } from '../../../lib/errors.ts';
import type { Logger } from '../../../lib/log.ts';
import { HetznerError, classifyHetznerError } from './errors.ts';
import { RateBudget } from './rate-budget.ts';
import type {
  Action, CreateImageInput, CreateServerInput, CreateServerResult, Image, Location, Pagination, Server,
  ServerType, SshKey, Labels,
} from './types.ts';

export const defaultHetznerEndpoint = 'https://api.hetzner.cloud/v1';

export interface HetznerConfig {
  /** API base URL including `/v1` (`HCLOUD_ENDPOINT`). */
  endpoint: string;
  /** Project API token (`HCLOUD_TOKEN`). */
  token: string;
  timeouts?: {
    /** TCP/TLS connect (default 10 s). */
    connectMs?: number;
    /** Whole request including body (default 30 s). */
    requestMs?: number;
  };
  /** A 429 whose reset is at most this far away is waited out inside the call (default 60 s); longer → RateLimited. */
  maxRateLimitWaitMs?: number;
  /** Transport failures and 5xx on GET are retried this many times with backoff (default 2). */
  getRetries?: number;
  /** Action polling: first interval, cap, and overall deadline (defaults 500 ms, 5 s, 10 min). */
  actionPoll?: { initialMs?: number; maxMs?: number; timeoutMs?: number };
  log?: Logger;
}

/** Reads `HCLOUD_TOKEN` and `HCLOUD_ENDPOINT`; a missing token is a Misconfigured failure. */
export function hetznerConfigFromEnv(env: NodeJS.ProcessEnv = process.env): HetznerConfig {
  const token = env.HCLOUD_TOKEN;
  if (!token) throw new HetznerError('HCLOUD_TOKEN is not set', { type: ErrorType.Misconfigured, code: 'config' });
  return { endpoint: env.HCLOUD_ENDPOINT || defaultHetznerEndpoint, token };
}

export interface ListOptions {
  label_selector?: string;
  name?: string;
  /** Fetch only this page (otherwise every page is fetched and concatenated). */
  page?: number;
  per_page?: number;
}

export interface Page<T> {
  items: T[];
  pagination: Pagination;
}

type Query = Record<string, string | number | boolean | string[] | undefined>;

/** Typed Hetzner Cloud client; every method throws HetznerError with an ErrorType. */
export interface HetznerClient {
  servers: {
    create(input: CreateServerInput): Promise<CreateServerResult>;
    get(id: number): Promise<Server>;
    list(opts?: ListOptions & { status?: string[] }): Promise<Server[]>;
    listPage(opts?: ListOptions & { status?: string[] }): Promise<Page<Server>>;
    delete(id: number): Promise<Action>;
    powerOn(id: number): Promise<Action>;
    shutdown(id: number): Promise<Action>;
    powerOff(id: number): Promise<Action>;
    createImage(id: number, input?: CreateImageInput): Promise<{ image: Image; action: Action }>;
    changeType(id: number, serverType: string, upgradeDisk: boolean): Promise<Action>;
  };
  actions: {
    get(id: number): Promise<Action>;
    /** Polls with backoff until success (returns it) or error (throws, typed by the action's error code). */
    waitFor(action: Action | number, opts?: { timeoutMs?: number }): Promise<Action>;
  };
  sshKeys: {
    create(input: { name: string; public_key: string; labels?: Labels }): Promise<SshKey>;
    get(id: number): Promise<SshKey>;
    list(opts?: ListOptions & { fingerprint?: string }): Promise<SshKey[]>;
    delete(id: number): Promise<void>;
  };
  serverTypes: {
    list(opts?: { name?: string }): Promise<ServerType[]>;
  };
  images: {
    get(id: number): Promise<Image>;
    list(opts?: ListOptions & { type?: Image['type'][]; status?: Image['status'][]; architecture?: 'x86' | 'arm' }): Promise<Image[]>;
    delete(id: number): Promise<void>;
  };
  locations: {
    list(): Promise<Location[]>;
  };
  /** Closes pooled connections. */
  close(): Promise<void>;
}

/** Builds a client. One client per process, so every caller shares one rate budget. */
export function createHetznerClient(config: HetznerConfig): HetznerClient {
  const base = config.endpoint.replace(/\/+$/, '');
  const requestMs = config.timeouts?.requestMs ?? 30_000;
  const agent = new Agent({
    connect: { timeout: config.timeouts?.connectMs ?? 10_000 },
    headersTimeout: requestMs,
    bodyTimeout: requestMs,
  });
  const budget = new RateBudget();
  const maxRateLimitWaitMs = config.maxRateLimitWaitMs ?? 60_000;
  const getRetries = config.getRetries ?? 2;
  const log = config.log;

  async function call<T>(method: 'GET' | 'POST' | 'DELETE', path: string, opts: { query?: Query; body?: unknown } = {}): Promise<T> {
    const url = base + path + queryString(opts.query);
    for (let attempt = 0; ; attempt++) {
      try {
        return await once<T>(method, path, url, opts.body);
      } catch (err) {
        if (!(err instanceof HetznerError)) throw err;
        // A 429 means the request was not processed: waiting for the reset and sending it again is safe.
        if (err.type === ErrorType.RateLimited && err.resetAt && err.resetAt.getTime() - Date.now() <= maxRateLimitWaitMs) {
          log?.warn({ method, path, resetAt: err.resetAt.toISOString() }, 'hetzner rate limited; waiting for reset');
          continue;
        }
        // Only reads are retried here; a repeated POST could act twice. Callers retry mutations idempotently.
        if (method === 'GET' && err.type === ErrorType.Transient && attempt < getRetries) {
          await sleep(Math.min(4000, 250 * 2 ** attempt) * (0.5 + Math.random() / 2));
          continue;
        }
        throw err;
      }
    }
  }

  async function once<T>(method: string, path: string, url: string, body: unknown): Promise<T> {
    await budget.acquire();
    let released = false;
    const release = () => {
      if (!released) budget.release();
      released = true;
    };
    try {
      let res;
      try {
        res = await request(url, {
          method: method as 'GET',
          dispatcher: agent,
          headers: {
            authorization: `Bearer ${config.token}`,
            accept: 'application/json',
            ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          },
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: AbortSignal.timeout(requestMs),
        });
      } catch (err) {
        throw transportError(method, path, err);
      }
      budget.observe(res.headers);
      let text: string;
      try {
        text = await res.body.text();
      } catch (err) {
        throw transportError(method, path, err);
      }
      if (res.statusCode < 400) return (text ? JSON.parse(text) : undefined) as T;
      let code = `http_${res.statusCode}`;
      let message = text.slice(0, 200);
      try {
        const parsed = JSON.parse(text) as { error?: { code?: string; message?: string } };
        code = parsed.error?.code ?? code;
        message = parsed.error?.message ?? message;
      } catch {
        // Not JSON (a proxy's error page): keep the status-derived code.
      }
      const type = classifyHetznerError(res.statusCode, code);
      let resetAt: Date | undefined;
      if (type === ErrorType.RateLimited) {
        const reset = Number(res.headers['ratelimit-reset']);
        resetAt = new Date(Number.isFinite(reset) && reset > 0 ? reset * 1000 : Date.now() + 1000);
        budget.blockUntil(resetAt.getTime());
      }
      throw new HetznerError(`Hetzner ${method} ${path}: ${res.statusCode} ${code}: ${message}`, {
        type, code, status: res.statusCode, resetAt,
      });
    } finally {
      release();
    }
  }

  async function listAll<T>(path: string, key: string, opts: Query & { page?: number; per_page?: number }): Promise<Page<T>> {
    const items: T[] = [];
    let page = opts.page ?? 1;
    for (;;) {
      const res = await call<Record<string, unknown> & { meta: { pagination: Pagination } }>('GET', path, {
        query: { ...opts, page, per_page: opts.per_page ?? 50 },
      });
      items.push(...(res[key] as T[]));
      const next = res.meta.pagination.next_page;
      if (opts.page !== undefined || next === null) return { items, pagination: res.meta.pagination };
      page = next;
    }
  }

  const servers: HetznerClient['servers'] = {
    create: (input) => call<CreateServerResult>('POST', '/servers', { body: input }),
    get: async (id) => (await call<{ server: Server }>('GET', `/servers/${id}`)).server,
    list: async (opts = {}) => (await listAll<Server>('/servers', 'servers', { ...opts })).items,
    listPage: (opts = {}) => listAll<Server>('/servers', 'servers', { ...opts, page: opts.page ?? 1 }),
    delete: async (id) => (await call<{ action: Action }>('DELETE', `/servers/${id}`)).action,
    powerOn: async (id) => (await call<{ action: Action }>('POST', `/servers/${id}/actions/poweron`)).action,
    shutdown: async (id) => (await call<{ action: Action }>('POST', `/servers/${id}/actions/shutdown`)).action,
    powerOff: async (id) => (await call<{ action: Action }>('POST', `/servers/${id}/actions/poweroff`)).action,
    createImage: (id, input = {}) => call<{ image: Image; action: Action }>('POST', `/servers/${id}/actions/create_image`, { body: input }),
    changeType: async (id, serverType, upgradeDisk) =>
      (await call<{ action: Action }>('POST', `/servers/${id}/actions/change_type`, {
        body: { server_type: serverType, upgrade_disk: upgradeDisk },
      })).action,
  };

  const actions: HetznerClient['actions'] = {
    get: async (id) => (await call<{ action: Action }>('GET', `/actions/${id}`)).action,
    async waitFor(action, opts = {}) {
      const id = typeof action === 'number' ? action : action.id;
      const initial = config.actionPoll?.initialMs ?? 500;
      const max = config.actionPoll?.maxMs ?? 5000;
      const deadline = Date.now() + (opts.timeoutMs ?? config.actionPoll?.timeoutMs ?? 600_000);
      let current = typeof action === 'number' ? undefined : action;
      for (let delay = initial; ; delay = Math.min(max, Math.ceil(delay * 1.5))) {
        if (current?.status === 'success') return current;
        if (current?.status === 'error') {
          const code = current.error?.code ?? 'action_failed';
          throw new HetznerError(`Hetzner action ${id} (${current.command}) failed: ${code}: ${current.error?.message ?? ''}`, {
            type: classifyHetznerError(422, code) === ErrorType.CapacityUnavailable ? ErrorType.CapacityUnavailable : ErrorType.Transient,
            code,
          });
        }
        if (Date.now() + delay > deadline) {
          throw new HetznerError(`Hetzner action ${id} still running at the deadline`, { type: ErrorType.Transient, code: 'action_timeout' });
        }
        await sleep(delay);
        current = await actions.get(id);
      }
    },
  };

  const sshKeys: HetznerClient['sshKeys'] = {
    create: async (input) => (await call<{ ssh_key: SshKey }>('POST', '/ssh_keys', { body: input })).ssh_key,
    get: async (id) => (await call<{ ssh_key: SshKey }>('GET', `/ssh_keys/${id}`)).ssh_key,
    list: async (opts = {}) => (await listAll<SshKey>('/ssh_keys', 'ssh_keys', { ...opts })).items,
    delete: async (id) => {
      await call<void>('DELETE', `/ssh_keys/${id}`);
    },
  };

  return {
    servers,
    actions,
    sshKeys,
    serverTypes: {
      list: async (opts = {}) => (await listAll<ServerType>('/server_types', 'server_types', { ...opts })).items,
    },
    images: {
      get: async (id) => (await call<{ image: Image }>('GET', `/images/${id}`)).image,
      list: async (opts = {}) => (await listAll<Image>('/images', 'images', { ...opts })).items,
      delete: async (id) => {
        await call<void>('DELETE', `/images/${id}`);
      },
    },
    locations: {
      list: async () => (await listAll<Location>('/locations', 'locations', {})).items,
    },
    close: () => agent.close(),
  };
}

function queryString(query: Query | undefined): string {
  if (!query) return '';
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) params.append(key, v);
    else params.append(key, String(value));
  }
  const s = params.toString();
  return s ? `?${s}` : '';
}

function transportError(method: string, path: string, err: unknown): HetznerError {
  const timedOut = err instanceof undiciErrors.HeadersTimeoutError || err instanceof undiciErrors.BodyTimeoutError
    || err instanceof undiciErrors.ConnectTimeoutError || (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError'));
  const message = errorMessage(err);
  return new HetznerError(`Hetzner ${method} ${path}: ${timedOut ? 'timed out' : 'transport failure'}: ${message}`, {
    type: ErrorType.Transient,
    code: timedOut ? 'timeout' : 'transport',
    cause: err,
  });
}

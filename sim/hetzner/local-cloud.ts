import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLogger, type Logger } from '../../lib/log.ts';
import { locations, serverTypes, systemImages, type SimServerType } from './catalog.ts';
import { parseUserData } from './cloud-init.ts';
import { labelsProblem, parseLabelSelector } from './labels.ts';
import { Machine, createBaseDisk, prepareHost } from './machine.ts';

/** One request/response pair, as the API saw it (for spec validation in tests). */
export interface Exchange {
  method: string;
  /** Path below `/v1`, e.g. `/servers/7/actions/poweron`. */
  path: string;
  /** The route template, e.g. `/servers/{id}/actions/poweron`. */
  template: string;
  query: Record<string, string[]>;
  requestBody: unknown;
  status: number;
  responseBody: unknown;
}

/** Fault rates (0..1) for one endpoint; `times` limits how many requests get a fault. */
export interface EndpointFaults {
  rateLimit?: number;
  serverError?: number;
  /** The request hangs without an answer (the client's timeout fires). */
  timeout?: number;
  times?: number;
}

export interface LocalCloudFaults {
  /** Keyed by `"METHOD /template"` (e.g. `"GET /servers"`) or `"*"` for every endpoint. */
  endpoints?: Record<string, EndpointFaults>;
  /** How far ahead an injected 429 puts `RateLimit-Reset` (default 1000 ms, rounded up to a second). */
  rateLimitResetMs?: number;
  /** Actions of these commands end in `status: "error"` with this error. */
  failActions?: Record<string, { code: string; message: string }>;
  /**
   * Out of stock: these type/location pairs show `available: false` in `GET /server_types`, and
   * creating or changing to them fails with `resource_unavailable`.
   */
  unavailable?: { serverType?: string; location?: string }[];
  /**
   * Types Hetzner has removed: gone from `GET /server_types` and refused for new servers and type
   * changes (`invalid_input` "not found"); existing servers keep showing theirs.
   */
  removedServerTypes?: string[];
  /**
   * Announced deprecations (per location, or everywhere without `location`): shown as
   * `locations[].deprecation` and `recommended: false`; after `unavailableAfter` the type is no longer
   * available there (create: `resource_unavailable`; change_type: `invalid_server_type`).
   */
  deprecatedServerTypes?: { serverType: string; location?: string; announced: string; unavailableAfter: string }[];
}

export interface LocalCloudOptions {
  /** Listen port on 127.0.0.1 (0 = any free port). */
  port?: number;
  /** Where servers' disks, snapshots and the state file live. */
  dataDir: string;
  /** Accept only this bearer token (default: any non-empty token). */
  token?: string;
  /** Budget per window; Hetzner: 3600 per hour, refilled gradually. */
  rateLimit?: { limit: number; windowMs: number };
  /**
   * Several Hetzner projects behind one endpoint, told apart by their tokens (then `token` and
   * `rateLimit` are not used): each sees only its own servers, snapshots and keys, has its own request
   * budget, and refuses a server past its limit with 403 `resource_limit_exceeded`.
   */
  projects?: LocalCloudProject[];
  /** How long actions take, per command or one number for all (default 300 ms). */
  actionDurationMs?: number | Record<string, number>;
  faults?: LocalCloudFaults;
  /** Servers listen on 127.0.<addressBlock>.10 and up (default: a random block, so parallel clouds do not collide). */
  addressBlock?: number;
  /** sshd port on each server address (default 22, as on Hetzner). */
  sshPort?: number;
  onExchange?: (exchange: Exchange) => void;
  log?: Logger;
}

/** One project of the local cloud (see LocalCloudOptions.projects). */
export interface LocalCloudProject {
  name: string;
  token: string;
  /** Servers the project may hold at once, as Hetzner's per-project limit (default: no limit). */
  serverLimit?: number;
  /** Budget per window (default 3600 per hour). */
  rateLimit?: { limit: number; windowMs: number };
}

export interface RequestRecord {
  /** Arrival time (ms since epoch). */
  at: number;
  method: string;
  path: string;
  template: string;
  status: number;
}

export interface LocalCloud {
  /** Base URL including `/v1`, for `HCLOUD_ENDPOINT`. */
  endpoint: string;
  port: number;
  /** Every request in arrival order, for tests that assert on timing. */
  requests: RequestRecord[];
  /** Replace the fault knobs at run time. */
  setFaults(faults: LocalCloudFaults): void;
  /** The machine behind a server (tests run commands in it or look at its disk). */
  machine(serverId: number): Machine | undefined;
  /** Stops the API and every sshd; the data dir stays unless `removeData`. */
  stop(opts?: { removeData?: boolean }): Promise<void>;
}

interface ServerRec {
  id: number;
  name: string;
  status: string;
  created: string;
  labels: Record<string, string>;
  serverTypeId: number;
  /** GB of the server's disk: its type's when created, kept by change_type unless `upgrade_disk` (absent in older state files). */
  diskSize?: number;
  location: string;
  imageId: number;
  ip: string;
  rootPassword: string | null;
  lockedBy: number | null;
  disableRoot: boolean;
  /** The project it belongs to (absent in state saved before projects: the default project). */
  project?: string;
}

interface ImageRec {
  id: number;
  type: 'system' | 'snapshot' | 'backup';
  status: 'available' | 'creating' | 'unavailable';
  name: string | null;
  description: string;
  created: string;
  labels: Record<string, string>;
  createdFrom: { id: number; name: string } | null;
  diskSize: number;
  imageSize: number | null;
  osFlavor: string;
  osVersion: string | null;
  project?: string;
}

interface KeyRec {
  id: number;
  name: string;
  public_key: string;
  fingerprint: string;
  labels: Record<string, string>;
  created: string;
  project?: string;
}

interface ActionRec {
  id: number;
  command: string;
  status: 'running' | 'success' | 'error';
  progress: number;
  started: string;
  startedMs: number;
  durationMs: number;
  finished: string | null;
  resources: { id: number; type: string }[];
  error: { code: string; message: string } | null;
}

interface State {
  nextId: number;
  servers: ServerRec[];
  images: ImageRec[];
  keys: KeyRec[];
  actions: ActionRec[];
}

class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly headers: Record<string, string>;
  constructor(status: number, code: string, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.headers = headers;
  }
}

const routes: { method: string; template: string; pattern: RegExp }[] = [
  ['GET', '/servers'], ['POST', '/servers'], ['GET', '/servers/{id}'], ['DELETE', '/servers/{id}'],
  ['POST', '/servers/{id}/actions/poweron'], ['POST', '/servers/{id}/actions/poweroff'],
  ['POST', '/servers/{id}/actions/shutdown'], ['POST', '/servers/{id}/actions/create_image'],
  ['POST', '/servers/{id}/actions/change_type'], ['GET', '/actions'], ['GET', '/actions/{id}'],
  ['GET', '/ssh_keys'], ['POST', '/ssh_keys'], ['GET', '/ssh_keys/{id}'], ['DELETE', '/ssh_keys/{id}'],
  ['GET', '/server_types'], ['GET', '/images'], ['GET', '/images/{id}'], ['DELETE', '/images/{id}'], ['GET', '/locations'],
].map(([method, template]) => ({
  method: method!,
  template: template!,
  pattern: new RegExp(`^${template!.replace(/\{id\}/g, '(\\d+)')}$`),
}));

/**
 * Starts the local Hetzner cloud: the API subset Berth uses, stateful, with real sshd servers on
 * 127.0.<block>.x. Stopping it stops every sshd it started.
 */
export async function startLocalCloud(opts: LocalCloudOptions): Promise<LocalCloud> {
  const log = opts.log ?? createLogger('local-cloud');
  const dataDir = path.resolve(opts.dataDir);
  await prepareHost();
  await fs.mkdir(path.join(dataDir, 'servers'), { recursive: true });
  await fs.mkdir(path.join(dataDir, 'images'), { recursive: true });
  const baseDisk = path.join(dataDir, 'base-disk');
  if (!(await fs.access(baseDisk).then(() => true, () => false))) await createBaseDisk(baseDisk);

  const stateFile = path.join(dataDir, 'state.json');
  const state: State = await fs.readFile(stateFile, 'utf8').then((t) => JSON.parse(t) as State, () => ({
    nextId: 1000, servers: [], images: [], keys: [], actions: [],
  }));
  const now = () => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
  if (!state.images.some((i) => i.type === 'system')) {
    for (const s of systemImages) {
      state.images.push({
        id: s.id, type: 'system', status: 'available', name: s.name, description: s.description, created: '2023-06-13T06:00:00Z',
        labels: {}, createdFrom: null, diskSize: 5, imageSize: null, osFlavor: s.os_flavor, osVersion: s.os_version,
      });
    }
  }
  // Actions cut short by a restart finish now; servers that were running boot again below.
  for (const a of state.actions) {
    if (a.status === 'running') Object.assign(a, { status: 'success', progress: 100, finished: now() });
  }
  for (const s of state.servers) s.lockedBy = null;

  let faults: LocalCloudFaults = opts.faults ?? {};
  const faultCounts = new Map<string, number>();
  const requests: RequestRecord[] = [];
  const defaultProject = 'default';
  const projects: LocalCloudProject[] = opts.projects ?? [{ name: defaultProject, token: opts.token ?? '', rateLimit: opts.rateLimit }];
  /** Each project's request budget: a bucket refilled gradually, and a block set by an injected 429. */
  const budgets = new Map(projects.map((p) => {
    const rate = p.rateLimit ?? { limit: 3600, windowMs: 3_600_000 };
    return [p.name, { rate, tokens: rate.limit, tokensAt: Date.now(), blockedUntil: 0 }];
  }));
  const projectOf = (rec: { project?: string }) => rec.project ?? defaultProject;
  const block = opts.addressBlock ?? 1 + Math.floor(Math.random() * 250);
  const sshPort = opts.sshPort ?? 22;
  const machines = new Map<number, Machine>();
  const hanging = new Set<http.ServerResponse>();
  let saving = Promise.resolve();

  const save = () => {
    saving = saving.then(() => fs.writeFile(stateFile, JSON.stringify(state, null, 1))).catch((err: unknown) => {
      log.error({ err }, 'could not save local cloud state');
    });
  };
  const nextId = () => state.nextId++;

  function machineFor(s: ServerRec): Machine {
    let m = machines.get(s.id);
    if (!m) {
      m = new Machine({ id: s.id, ip: s.ip, sshPort, dir: path.join(dataDir, 'servers', String(s.id)), log });
      machines.set(s.id, m);
    }
    return m;
  }

  // ---- rate limit ---------------------------------------------------------------------------
  type Budget = NonNullable<ReturnType<typeof budgets.get>>;
  function refill(b: Budget, t: number) {
    b.tokens = Math.min(b.rate.limit, b.tokens + ((t - b.tokensAt) * b.rate.limit) / b.rate.windowMs);
    b.tokensAt = t;
  }
  function rateHeaders(b: Budget | undefined, t: number): Record<string, string> {
    if (!b) return {};
    // An injected 429 blocks until its own reset; otherwise reset is when the budget is full again.
    const blocked = t < b.blockedUntil;
    const resetMs = blocked ? b.blockedUntil : t + ((b.rate.limit - b.tokens) * b.rate.windowMs) / b.rate.limit;
    return {
      'RateLimit-Limit': String(b.rate.limit),
      'RateLimit-Remaining': String(blocked ? 0 : Math.max(0, Math.floor(b.tokens))),
      'RateLimit-Reset': String(Math.ceil(resetMs / 1000)),
    };
  }

  // ---- actions ------------------------------------------------------------------------------
  function durationFor(command: string): number {
    const d = opts.actionDurationMs;
    if (typeof d === 'number') return d;
    return d?.[command] ?? 300;
  }

  /** Starts an action; `work` runs alongside the action's nominal duration, and its failure fails the action. */
  function startAction(command: string, resources: { id: number; type: string }[], work: () => Promise<void>, after?: (ok: boolean) => void): ActionRec {
    const action: ActionRec = {
      id: nextId(), command, status: 'running', progress: 0, started: now(), startedMs: Date.now(),
      durationMs: durationFor(command), finished: null, resources, error: null,
    };
    state.actions.push(action);
    const server = resources.find((r) => r.type === 'server');
    const rec = server && state.servers.find((s) => s.id === server.id);
    if (rec && command !== 'delete_server') rec.lockedBy = action.id;
    void (async () => {
      let error: { code: string; message: string } | null = null;
      try {
        await Promise.all([sleep(action.durationMs), work()]);
      } catch (err) {
        log.warn({ err, action: action.id, command }, 'action failed');
        error = { code: 'action_failed', message: (err as Error).message };
      }
      error ??= faults.failActions?.[command] ?? null;
      Object.assign(action, { status: error ? 'error' : 'success', progress: 100, finished: now(), error });
      if (rec && rec.lockedBy === action.id) rec.lockedBy = null;
      after?.(!error);
      save();
    })();
    save();
    return action;
  }

  function actionJson(a: ActionRec) {
    const progress = a.status === 'running' ? Math.min(99, Math.floor(((Date.now() - a.startedMs) / Math.max(1, a.durationMs)) * 100)) : a.progress;
    return { id: a.id, command: a.command, status: a.status, progress, started: a.started, finished: a.finished, resources: a.resources, error: a.error };
  }

  // ---- JSON views ---------------------------------------------------------------------------
  function locationJson(name: string) {
    const l = locations.find((x) => x.name === name)!;
    return { id: l.id, name: l.name, description: l.description, country: l.country, city: l.city, latitude: l.latitude, longitude: l.longitude, network_zone: l.network_zone };
  }
  /** The deprecation announced for a type in a location, if any. */
  function deprecationOf(t: SimServerType, location: string) {
    const d = (faults.deprecatedServerTypes ?? []).find((x) => x.serverType === t.name && (!x.location || x.location === location));
    return d ? { announced: d.announced, unavailable_after: d.unavailableAfter } : null;
  }
  /** Why a type cannot be had in a location now (not sold there, out of stock, past its deprecation), or undefined. */
  function unavailableReason(t: SimServerType, location: string): string | undefined {
    if (!t.locationNames.includes(location)) return `server type ${t.name} is not sold in ${location}`;
    if ((faults.unavailable ?? []).some((u) => (!u.serverType || u.serverType === t.name) && (!u.location || u.location === location))) {
      return `server type ${t.name} is unavailable in ${location}`;
    }
    const deprecation = deprecationOf(t, location);
    if (deprecation && Date.parse(deprecation.unavailable_after) <= Date.now()) return `server type ${t.name} is deprecated and no longer available in ${location}`;
    return undefined;
  }
  function removed(t: SimServerType): boolean {
    return (faults.removedServerTypes ?? []).includes(t.name);
  }
  function serverTypeJson(t: SimServerType) {
    // The live API's per-location view (available, recommended, deprecation), which Hetzner's own clients require.
    const perLocation = t.locationNames.map((n) => {
      const deprecation = deprecationOf(t, n);
      const available = unavailableReason(t, n) === undefined;
      return { id: locations.find((l) => l.name === n)!.id, name: n, deprecation, available, recommended: available && deprecation === null };
    });
    const deprecatedEverywhere = perLocation.every((l) => l.deprecation !== null);
    return {
      id: t.id, name: t.name, description: t.name.toUpperCase(), category: t.cpu_type === 'shared' ? 'shared_vcpu' : 'dedicated_vcpu',
      cores: t.cores, memory: t.memory, disk: t.disk, cpu_type: t.cpu_type, architecture: t.architecture, storage_type: t.storage_type,
      deprecated: deprecatedEverywhere, deprecation: deprecatedEverywhere ? perLocation[0]!.deprecation : null,
      locations: perLocation,
      prices: t.locationNames.map((n) => ({
        location: n, included_traffic: 21990232555520,
        price_hourly: { net: (Number(t.monthlyNet) / 730).toFixed(4), gross: ((Number(t.monthlyNet) / 730) * 1.19).toFixed(4) },
        price_monthly: { net: t.monthlyNet, gross: (Number(t.monthlyNet) * 1.19).toFixed(4) },
        price_per_tb_traffic: { net: '1.0000', gross: '1.1900' },
      })),
    };
  }
  function imageJson(i: ImageRec) {
    return {
      id: i.id, type: i.type, status: i.status, name: i.name, description: i.description, image_size: i.imageSize, disk_size: i.diskSize,
      created: i.created, created_from: i.createdFrom, bound_to: null, os_flavor: i.osFlavor, os_version: i.osVersion,
      architecture: 'x86', rapid_deploy: i.type === 'system', protection: { delete: false }, deprecated: null, deleted: null, labels: i.labels,
    };
  }
  function serverJson(s: ServerRec) {
    const t = serverTypes.find((x) => x.id === s.serverTypeId)!;
    const l = locations.find((x) => x.name === s.location)!;
    const image = state.images.find((i) => i.id === s.imageId);
    const sold = serverTypes.filter((x) => !removed(x) && x.locationNames.includes(s.location));
    const available = sold.filter((x) => unavailableReason(x, s.location) === undefined);
    return {
      id: s.id, name: s.name, status: s.status, created: s.created, labels: s.labels, locked: s.lockedBy !== null,
      server_type: serverTypeJson(t), location: locationJson(s.location),
      datacenter: {
        id: l.datacenter.id, name: l.datacenter.name, description: l.datacenter.description, location: locationJson(s.location),
        server_types: { supported: sold.map((x) => x.id), available: available.map((x) => x.id), available_for_migration: available.map((x) => x.id) },
      },
      image: image ? imageJson(image) : null, iso: null, rescue_enabled: false, backup_window: null,
      public_net: { ipv4: { id: s.id, ip: s.ip, blocked: false, dns_ptr: `static.${s.ip}.clients.local` }, ipv6: null, floating_ips: [], firewalls: [] },
      private_net: [], primary_disk_size: diskOf(s), protection: { delete: false, rebuild: false }, load_balancers: [], volumes: [],
      included_traffic: 21990232555520, ingoing_traffic: 0, outgoing_traffic: 0, placement_group: null,
    };
  }
  function keyJson(k: KeyRec) {
    return { id: k.id, name: k.name, public_key: k.public_key, fingerprint: k.fingerprint, labels: k.labels, created: k.created };
  }

  // ---- helpers ------------------------------------------------------------------------------
  function paginate<T>(items: T[], query: URLSearchParams) {
    const page = Math.max(1, Number(query.get('page') ?? 1) || 1);
    const perPage = Math.min(50, Math.max(1, Number(query.get('per_page') ?? 25) || 25));
    const last = Math.max(1, Math.ceil(items.length / perPage));
    return {
      items: items.slice((page - 1) * perPage, page * perPage),
      meta: { pagination: { page, per_page: perPage, previous_page: page > 1 ? page - 1 : null, next_page: page < last ? page + 1 : null, last_page: last, total_entries: items.length } },
    };
  }
  function selectorFilter<T extends { labels: Record<string, string> }>(items: T[], query: URLSearchParams): T[] {
    const selector = query.get('label_selector');
    if (!selector) return items;
    try {
      const p = parseLabelSelector(selector);
      return items.filter((i) => p(i.labels));
    } catch (err) {
      throw new ApiError(400, 'invalid_input', (err as Error).message);
    }
  }
  function findServerIn(id: number, project: string): ServerRec {
    const s = state.servers.find((x) => x.id === id && projectOf(x) === project);
    if (!s) throw new ApiError(404, 'not_found', `server with ID '${id}' not found`);
    return s;
  }
  function unlocked(s: ServerRec) {
    if (s.lockedBy !== null) throw new ApiError(423, 'locked', 'server is locked by another action');
    if (s.status === 'deleting') throw new ApiError(423, 'locked', 'server is being deleted');
  }
  /** A type the API still knows (removed types are not found). */
  function serverType(ref: string): SimServerType | undefined {
    return serverTypes.find((t) => (t.name === ref || String(t.id) === ref) && !removed(t));
  }
  function diskOf(s: ServerRec): number {
    return s.diskSize ?? serverTypes.find((t) => t.id === s.serverTypeId)!.disk;
  }
  async function allocateIp(): Promise<string> {
    const used = new Set(state.servers.map((s) => s.ip));
    for (let host = 10; host < 255; host++) {
      const ip = `127.0.${block}.${host}`;
      if (used.has(ip)) continue;
      if (await bindable(ip, sshPort)) return ip;
    }
    throw new ApiError(412, 'resource_unavailable', 'no free loopback address left in this local cloud');
  }
  function body(b: unknown): Record<string, unknown> {
    if (b === undefined) return {};
    if (typeof b !== 'object' || b === null || Array.isArray(b)) throw new ApiError(400, 'invalid_input', 'request body must be a JSON object');
    return b as Record<string, unknown>;
  }

  // ---- handlers -----------------------------------------------------------------------------
  async function createServer(b: Record<string, unknown>, project: string) {
    // Hetzner takes an ID or a name for these; its own clients send IDs as JSON numbers.
    const idOrName = (v: unknown) => (typeof v === 'number' && Number.isSafeInteger(v) ? String(v) : v);
    const name = b.name, typeRef = idOrName(b.server_type), imageRef = idOrName(b.image), locationRef = idOrName(b.location);
    if (typeof name !== 'string' || !/^[a-zA-Z0-9]([a-zA-Z0-9.-]{0,61}[a-zA-Z0-9])?$/.test(name)) throw new ApiError(400, 'invalid_input', 'invalid input in field "name"');
    if (typeof typeRef !== 'string') throw new ApiError(400, 'invalid_input', 'invalid input in field "server_type"');
    if (typeof imageRef !== 'string') throw new ApiError(400, 'invalid_input', 'invalid input in field "image"');
    const problem = labelsProblem(b.labels);
    if (problem) throw new ApiError(400, 'invalid_input', problem);
    if (b.user_data !== undefined && (typeof b.user_data !== 'string' || Buffer.byteLength(b.user_data) > 32 * 1024)) {
      throw new ApiError(400, 'invalid_input', 'user_data must be a string of at most 32 KiB');
    }
    const own = state.servers.filter((s) => projectOf(s) === project);
    if (own.some((s) => s.name === name)) throw new ApiError(409, 'uniqueness_error', 'server name is already used');
    const limit = projects.find((p) => p.name === project)?.serverLimit;
    if (limit !== undefined && own.length >= limit) {
      throw new ApiError(403, 'resource_limit_exceeded', `server limit of ${limit} reached for this project`);
    }
    const type = serverType(typeRef);
    if (!type) throw new ApiError(400, 'invalid_input', `server type ${typeRef} not found`);
    const image = state.images.find((i) => (i.name === imageRef || String(i.id) === imageRef) && i.status === 'available'
      && (i.type === 'system' || projectOf(i) === project));
    if (!image) throw new ApiError(400, 'invalid_input', `image ${imageRef} not found`);
    const locationName = typeof locationRef === 'string' ? locationRef : type.locationNames[0]!;
    if (!locations.some((l) => l.name === locationName || String(l.id) === locationName)) throw new ApiError(400, 'invalid_input', `location ${locationName} not found`);
    const location = locations.find((l) => l.name === locationName || String(l.id) === locationName)!.name;
    if (!type.locationNames.includes(location)) throw new ApiError(400, 'invalid_input', `server type ${type.name} is not supported in ${location}`);
    const unavailable = unavailableReason(type, location);
    if (unavailable) throw new ApiError(412, 'resource_unavailable', unavailable);
    // A snapshot keeps its server's disk: it does not fit a type with a smaller one.
    if (image.diskSize > type.disk) throw new ApiError(422, 'invalid_input', `image disk is bigger than server type disk (${image.diskSize} GB > ${type.disk} GB)`);
    const keyRefs = (b.ssh_keys as unknown[] | undefined) ?? [];
    const rootKeys = keyRefs.map((ref) => {
      const k = state.keys.find((x) => (x.name === ref || String(x.id) === String(ref)) && projectOf(x) === project);
      if (!k) throw new ApiError(400, 'invalid_input', `ssh key ${String(ref)} not found`);
      return k.public_key;
    });
    let config;
    try {
      config = parseUserData(b.user_data as string | undefined);
    } catch (err) {
      throw new ApiError(400, 'invalid_input', (err as Error).message);
    }
    if (config.ignored.length) log.info({ ignored: config.ignored }, 'cloud-init keys the local cloud ignores');
    const rec: ServerRec = {
      id: nextId(), name, status: 'initializing', created: now(), labels: (b.labels as Record<string, string>) ?? {},
      serverTypeId: type.id, diskSize: type.disk, location, imageId: image.id, ip: await allocateIp(),
      rootPassword: rootKeys.length ? null : randomBytes(12).toString('base64url'), lockedBy: null, disableRoot: config.disableRoot,
      ...(project === defaultProject ? {} : { project }),
    };
    state.servers.push(rec);
    const machine = machineFor(rec);
    const imageDisk = image.type === 'system' ? baseDisk : path.join(dataDir, 'images', String(image.id), 'disk');
    const start = b.start_after_create !== false;
    const resources = [{ id: rec.id, type: 'server' }];
    let installed: Promise<void> = Promise.resolve();
    const action = startAction('create_server', resources, () => (installed = machine.install(imageDisk, config, rootKeys)), (ok) => {
      if (!ok) rec.status = 'off';
      else if (!start) rec.status = 'off';
    });
    const nextActions = [];
    if (start) {
      const startedAt = Date.now();
      const next: ActionRec = {
        id: nextId(), command: 'start_server', status: 'running', progress: 0, started: now(), startedMs: startedAt,
        durationMs: durationFor('start_server'), finished: null, resources, error: null,
      };
      state.actions.push(next);
      nextActions.push(next);
      void (async () => {
        let error: { code: string; message: string } | null = null;
        try {
          while (state.actions.find((a) => a.id === action.id)?.status === 'running') await sleep(20);
          await installed;
          if (action.status !== 'success') throw new Error('create_server failed');
          if (!state.servers.includes(rec)) throw new Error('server was deleted');
          rec.status = 'starting';
          await Promise.all([machine.start(), sleep(next.durationMs)]);
          rec.status = 'running';
        } catch (err) {
          error = { code: 'action_failed', message: (err as Error).message };
          if (state.servers.includes(rec) && rec.status !== 'deleting') rec.status = 'off';
        }
        error ??= faults.failActions?.start_server ?? null;
        Object.assign(next, { status: error ? 'error' : 'success', progress: 100, finished: now(), error });
        save();
      })();
    }
    return { status: 201, body: { server: serverJson(rec), action: actionJson(action), next_actions: nextActions.map(actionJson), root_password: rec.rootPassword } };
  }

  function powerAction(s: ServerRec, command: 'start_server' | 'stop_server' | 'shutdown_server') {
    unlocked(s);
    const machine = machineFor(s);
    if (command === 'start_server') {
      if (s.status !== 'running') s.status = 'starting';
      return startAction(command, [{ id: s.id, type: 'server' }], () => machine.start(), (ok) => { s.status = ok ? 'running' : 'off'; });
    }
    if (s.status !== 'off') s.status = 'stopping';
    return startAction(command, [{ id: s.id, type: 'server' }], () => machine.stop(command === 'shutdown_server'), () => { s.status = 'off'; });
  }

  async function handle(method: string, template: string, id: number, query: URLSearchParams, b: unknown, project: string): Promise<{ status: number; body?: unknown }> {
    const findServer = (serverId: number) => findServerIn(serverId, project);
    const mine = <T extends { project?: string }>(items: T[]) => items.filter((x) => projectOf(x) === project);
    switch (`${method} ${template}`) {
      case 'GET /servers': {
        let items = selectorFilter(mine(state.servers), query);
        const name = query.get('name');
        if (name) items = items.filter((s) => s.name === name);
        const statuses = query.getAll('status');
        if (statuses.length) items = items.filter((s) => statuses.includes(s.status));
        const p = paginate(items, query);
        return { status: 200, body: { servers: p.items.map(serverJson), meta: p.meta } };
      }
      case 'POST /servers':
        return createServer(body(b), project);
      case 'GET /servers/{id}':
        return { status: 200, body: { server: serverJson(findServer(id)) } };
      case 'DELETE /servers/{id}': {
        const s = findServer(id);
        s.status = 'deleting';
        const action = startAction('delete_server', [{ id: s.id, type: 'server' }], () => machineFor(s).destroy(), () => {
          state.servers = state.servers.filter((x) => x !== s);
          machines.delete(s.id);
        });
        return { status: 200, body: { action: actionJson(action) } };
      }
      case 'POST /servers/{id}/actions/poweron':
        return { status: 201, body: { action: actionJson(powerAction(findServer(id), 'start_server')) } };
      case 'POST /servers/{id}/actions/poweroff':
        return { status: 201, body: { action: actionJson(powerAction(findServer(id), 'stop_server')) } };
      case 'POST /servers/{id}/actions/shutdown':
        return { status: 201, body: { action: actionJson(powerAction(findServer(id), 'shutdown_server')) } };
      case 'POST /servers/{id}/actions/create_image': {
        const s = findServer(id);
        unlocked(s);
        const req = body(b);
        const problem = labelsProblem(req.labels);
        if (problem) throw new ApiError(400, 'invalid_input', problem);
        const type = req.type ?? 'snapshot';
        if (type !== 'snapshot' && type !== 'backup') throw new ApiError(400, 'invalid_input', 'invalid input in field "type"');
        const source = state.images.find((i) => i.id === s.imageId);
        const image: ImageRec = {
          id: nextId(), type, status: 'creating', name: null, description: typeof req.description === 'string' ? req.description : `${s.name}-${now()}`,
          created: now(), labels: (req.labels as Record<string, string>) ?? {}, createdFrom: { id: s.id, name: s.name },
          diskSize: diskOf(s), imageSize: null,
          osFlavor: source?.osFlavor ?? 'debian', osVersion: source?.osVersion ?? null,
          ...(project === defaultProject ? {} : { project }),
        };
        state.images.push(image);
        const action = startAction('create_image', [{ id: s.id, type: 'server' }, { id: image.id, type: 'image' }],
          () => machineFor(s).snapshotTo(path.join(dataDir, 'images', String(image.id), 'disk')),
          (ok) => {
            image.status = ok ? 'available' : 'unavailable';
            image.imageSize = ok ? 0.5 : null;
          });
        return { status: 201, body: { image: imageJson(image), action: actionJson(action) } };
      }
      case 'POST /servers/{id}/actions/change_type': {
        const s = findServer(id);
        unlocked(s);
        const req = body(b);
        if (typeof req.server_type !== 'string' || typeof req.upgrade_disk !== 'boolean') throw new ApiError(400, 'invalid_input', 'server_type and upgrade_disk are required');
        const type = serverType(req.server_type);
        if (!type) throw new ApiError(400, 'invalid_input', `server type ${req.server_type} not found`);
        // Hetzner: only types with the same storage type (and architecture) and an equal or bigger disk; a disk never shrinks.
        const current = serverTypes.find((t) => t.id === s.serverTypeId)!;
        if (type.storage_type !== current.storage_type || type.architecture !== current.architecture) {
          throw new ApiError(422, 'invalid_server_type', `server type ${type.name} does not fit for the given server`);
        }
        if (type.disk < diskOf(s)) {
          throw new ApiError(422, 'invalid_server_type', 'cannot change type because the selected server_type has not sufficient disk space');
        }
        const deprecation = deprecationOf(type, s.location);
        if (deprecation && Date.parse(deprecation.unavailable_after) <= Date.now()) {
          throw new ApiError(422, 'invalid_server_type', `server type ${type.name} is deprecated`);
        }
        if (s.status !== 'off') throw new ApiError(412, 'server_not_stopped', 'the server must be powered off to change its type');
        const unavailable = unavailableReason(type, s.location);
        if (unavailable) throw new ApiError(412, 'resource_unavailable', unavailable);
        const upgradeDisk = req.upgrade_disk;
        const action = startAction('change_server_type', [{ id: s.id, type: 'server' }], async () => undefined, (ok) => {
          if (!ok) return;
          s.diskSize = upgradeDisk ? type.disk : diskOf(s);
          s.serverTypeId = type.id;
        });
        return { status: 201, body: { action: actionJson(action) } };
      }
      case 'GET /actions': {
        // Only by id since 2025-01-30 (listing every action of a project was removed); Hetzner's clients poll this way.
        const ids = query.getAll('id').map(Number);
        if (ids.length === 0 || ids.some((n) => !Number.isSafeInteger(n))) throw new ApiError(400, 'invalid_input', 'invalid input in field "id"');
        const p = paginate(state.actions.filter((a) => ids.includes(a.id)), query);
        return { status: 200, body: { actions: p.items.map(actionJson), meta: p.meta } };
      }
      case 'GET /actions/{id}': {
        const a = state.actions.find((x) => x.id === id);
        if (!a) throw new ApiError(404, 'not_found', `action with ID '${id}' not found`);
        return { status: 200, body: { action: actionJson(a) } };
      }
      case 'GET /ssh_keys': {
        let items = selectorFilter(mine(state.keys), query);
        const name = query.get('name');
        if (name) items = items.filter((k) => k.name === name);
        const fp = query.get('fingerprint');
        if (fp) items = items.filter((k) => k.fingerprint === fp);
        const p = paginate(items, query);
        return { status: 200, body: { ssh_keys: p.items.map(keyJson), meta: p.meta } };
      }
      case 'POST /ssh_keys': {
        const req = body(b);
        if (typeof req.name !== 'string' || !req.name) throw new ApiError(400, 'invalid_input', 'invalid input in field "name"');
        if (typeof req.public_key !== 'string') throw new ApiError(400, 'invalid_input', 'invalid input in field "public_key"');
        const problem = labelsProblem(req.labels);
        if (problem) throw new ApiError(400, 'invalid_input', problem);
        const fingerprint = md5Fingerprint(req.public_key);
        if (!fingerprint) throw new ApiError(400, 'invalid_input', 'invalid input in field "public_key"');
        if (mine(state.keys).some((k) => k.name === req.name)) throw new ApiError(409, 'uniqueness_error', 'SSH key with the same name already exists');
        if (mine(state.keys).some((k) => k.fingerprint === fingerprint)) throw new ApiError(409, 'uniqueness_error', 'SSH key with the same fingerprint already exists');
        const key: KeyRec = { id: nextId(), name: req.name, public_key: req.public_key.trim(), fingerprint, labels: (req.labels as Record<string, string>) ?? {}, created: now(),
          ...(project === defaultProject ? {} : { project }) };
        state.keys.push(key);
        save();
        return { status: 201, body: { ssh_key: keyJson(key) } };
      }
      case 'GET /ssh_keys/{id}': {
        const k = mine(state.keys).find((x) => x.id === id);
        if (!k) throw new ApiError(404, 'not_found', `ssh_key with ID '${id}' not found`);
        return { status: 200, body: { ssh_key: keyJson(k) } };
      }
      case 'DELETE /ssh_keys/{id}': {
        if (!mine(state.keys).some((x) => x.id === id)) throw new ApiError(404, 'not_found', `ssh_key with ID '${id}' not found`);
        state.keys = state.keys.filter((x) => x.id !== id);
        save();
        return { status: 204 };
      }
      case 'GET /server_types': {
        let items = serverTypes.filter((t) => !removed(t));
        const name = query.get('name');
        if (name) items = items.filter((t) => t.name === name);
        const p = paginate(items, query);
        return { status: 200, body: { server_types: p.items.map(serverTypeJson), meta: p.meta } };
      }
      case 'GET /images': {
        let items = selectorFilter(state.images.filter((i) => i.type === 'system' || projectOf(i) === project), query);
        const types = query.getAll('type');
        if (types.length) items = items.filter((i) => types.includes(i.type));
        const statuses = query.getAll('status');
        if (statuses.length) items = items.filter((i) => statuses.includes(i.status));
        const name = query.get('name');
        if (name) items = items.filter((i) => i.name === name);
        // Every image here is x86, as the local servers are.
        const architecture = query.get('architecture');
        if (architecture && architecture !== 'x86') items = [];
        const p = paginate(items, query);
        return { status: 200, body: { images: p.items.map(imageJson), meta: p.meta } };
      }
      case 'GET /images/{id}': {
        const i = state.images.find((x) => x.id === id && (x.type === 'system' || projectOf(x) === project));
        if (!i) throw new ApiError(404, 'not_found', `image with ID '${id}' not found`);
        return { status: 200, body: { image: imageJson(i) } };
      }
      case 'DELETE /images/{id}': {
        const i = state.images.find((x) => x.id === id && (x.type === 'system' || projectOf(x) === project));
        if (!i) throw new ApiError(404, 'not_found', `image with ID '${id}' not found`);
        if (i.type === 'system') throw new ApiError(403, 'forbidden', 'system images cannot be deleted');
        state.images = state.images.filter((x) => x !== i);
        await fs.rm(path.join(dataDir, 'images', String(i.id)), { recursive: true, force: true });
        save();
        return { status: 204 };
      }
      case 'GET /locations': {
        const p = paginate(locations, query);
        return { status: 200, body: { locations: p.items.map((l) => locationJson(l.name)), meta: p.meta } };
      }
    }
    throw new ApiError(404, 'not_found', 'not found');
  }

  function injectedFault(key: string): keyof EndpointFaults | undefined {
    for (const k of [key, '*']) {
      const f = faults.endpoints?.[k];
      if (!f) continue;
      const used = faultCounts.get(k) ?? 0;
      if (f.times !== undefined && used >= f.times) continue;
      for (const kind of ['rateLimit', 'serverError', 'timeout'] as const) {
        const p = f[kind];
        if (p && Math.random() < p) {
          faultCounts.set(k, used + 1);
          return kind;
        }
      }
    }
    return undefined;
  }

  const server = http.createServer((req, res) => {
    const arrived = Date.now();
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const url = new URL(req.url ?? '/', 'http://local');
        const method = req.method ?? 'GET';
        const rel = url.pathname.replace(/^\/v1/, '');
        const route = routes.find((r) => r.method === method && r.pattern.test(rel));
        const template = route?.template ?? rel;
        const id = Number(route?.pattern.exec(rel)?.[1] ?? 0);
        let requestBody: unknown;
        let status = 500;
        let responseBody: unknown;
        let headers: Record<string, string> = {};
        let budget: Budget | undefined;
        const record: RequestRecord = { at: arrived, method, path: rel, template, status: 0 };
        requests.push(record);
        try {
          const raw = Buffer.concat(chunks).toString('utf8');
          if (raw) {
            try {
              requestBody = JSON.parse(raw);
            } catch {
              throw new ApiError(400, 'json_error', 'request body is not valid JSON');
            }
          }
          const auth = req.headers.authorization ?? '';
          const token = auth.startsWith('Bearer ') ? auth.slice(7) : '';
          // A project's token, or (one project, no token set) any non-empty token.
          const project = projects.find((p) => p.token === token) ?? (!opts.projects && !opts.token && token ? projects[0] : undefined);
          if (!token || !project) throw new ApiError(401, 'unauthorized', 'unable to authenticate');
          budget = budgets.get(project.name)!;
          refill(budget, arrived);
          if (arrived < budget.blockedUntil || budget.tokens < 1) {
            throw new ApiError(429, 'rate_limit_exceeded', 'limit of requests per hour reached', rateHeaders(budget, arrived));
          }
          budget.tokens -= 1;
          const fault = injectedFault(`${method} ${template}`);
          if (fault === 'timeout') {
            hanging.add(res);
            res.once('close', () => hanging.delete(res));
            record.status = -1;
            return;
          }
          if (fault === 'rateLimit') {
            budget.blockedUntil = Math.ceil((arrived + (faults.rateLimitResetMs ?? 1000)) / 1000) * 1000;
            throw new ApiError(429, 'rate_limit_exceeded', 'limit of requests per hour reached', rateHeaders(budget, arrived));
          }
          if (fault === 'serverError') throw new ApiError(500, 'server_error', 'an internal error occurred');
          if (!route) throw new ApiError(404, 'not_found', `no route for ${method} ${rel}`);
          const result = await handle(method, template, id, url.searchParams, requestBody, project.name);
          status = result.status;
          responseBody = result.body;
          headers = rateHeaders(budget, Date.now());
        } catch (err) {
          if (err instanceof ApiError) {
            status = err.status;
            responseBody = { error: { code: err.code, message: err.message, details: null } };
            headers = { ...rateHeaders(budget, Date.now()), ...err.headers };
          } else {
            log.error({ err }, 'local cloud handler failed');
            status = 500;
            responseBody = { error: { code: 'server_error', message: (err as Error).message, details: null } };
          }
        }
        record.status = status;
        const text = responseBody === undefined ? '' : JSON.stringify(responseBody);
        res.writeHead(status, { ...headers, ...(text ? { 'content-type': 'application/json' } : {}) });
        res.end(text);
        const query: Record<string, string[]> = {};
        for (const key of new Set(url.searchParams.keys())) query[key] = url.searchParams.getAll(key);
        opts.onExchange?.({ method, path: rel, template, query, requestBody, status, responseBody });
      })();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;

  // Servers that were running before a restart boot again.
  for (const s of state.servers) {
    if (s.status === 'running' || s.status === 'starting') {
      s.status = await machineFor(s).start().then(() => 'running', (err: unknown) => {
        log.warn({ err, server: s.id }, 'could not boot server from saved state');
        return 'off';
      });
    } else if (s.status !== 'deleting') s.status = 'off';
  }
  log.info({ port, block }, 'local Hetzner cloud listening');

  return {
    endpoint: `http://127.0.0.1:${port}/v1`,
    port,
    requests,
    setFaults(f) {
      faults = f;
      faultCounts.clear();
    },
    machine: (id) => machines.get(id),
    async stop(stopOpts = {}) {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await Promise.all([...machines.values()].map((m) => m.stop(false).catch((err: unknown) => log.warn({ err }, 'could not stop a server'))));
      await saving;
      if (stopOpts.removeData) await fs.rm(dataDir, { recursive: true, force: true });
    },
  };
}

function md5Fingerprint(publicKey: string): string | undefined {
  const parts = publicKey.trim().split(/\s+/);
  if (parts.length < 2 || !/^(ssh-|ecdsa-)/.test(parts[0]!)) return undefined;
  const blob = Buffer.from(parts[1]!, 'base64');
  if (blob.length < 16) return undefined;
  return createHash('md5').update(blob).digest('hex').match(/../g)!.join(':');
}

function bindable(ip: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, ip, () => probe.close(() => resolve(true)));
  });
}

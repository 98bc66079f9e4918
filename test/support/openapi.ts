import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { Exchange } from '../../sim/hetzner/local-cloud.ts';

/** The Hetzner spec lives beside the repo (never copied into it): ../shared/specs/ from the repo root. */
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const hetznerSpecPath = path.resolve(repoRoot, '../shared/specs/hetzner-cloud.openapi.json');

interface Operation {
  operationId: string;
  parameters?: { in: string; name: string; required?: boolean; schema: Record<string, unknown> }[];
  requestBody?: { required?: boolean; content: Record<string, { schema: unknown }> };
  responses: Record<string, { content?: Record<string, { schema: unknown }> }>;
}

/**
 * Validates Hetzner API exchanges against the OpenAPI spec: the request (path, query parameters,
 * body) and the response (status listed, body schema). `null` when the spec file is absent.
 */
export interface OpenApiValidator {
  /** Problems with one exchange; empty when it conforms. */
  check(exchange: Exchange): string[];
  /** For `startLocalCloud({ onExchange })`: collects problems of every exchange. */
  onExchange: (exchange: Exchange) => void;
  /** Every problem seen so far (with the exchange that caused it), and how many exchanges were checked. */
  problems: string[];
  checked: number;
}

/** Running under CI: the `CI` variable is set (CI services set it), and not to `false` or `0`. */
export function underCi(env: Record<string, string | undefined> = process.env): boolean {
  const value = env.CI?.trim().toLowerCase();
  return value !== undefined && value !== '' && value !== 'false' && value !== '0';
}

/** The spec-conformance check of one test file (see {@link hetznerConformance}). */
export interface HetznerConformance {
  /** Null when the spec is absent; pass `validator?.onExchange` to the local cloud. */
  validator: OpenApiValidator | null;
  /** True only when the spec is absent outside CI: the conformance tests skip themselves. */
  skip: boolean;
  /** The validator; throws, naming the missing file, when the spec is absent (reached only under CI). */
  require(): OpenApiValidator;
}

/**
 * Loads the validator for a test file. Without the spec beside the repo the conformance tests skip
 * themselves locally, but under CI they run and fail: a check that skips itself in CI passes unnoticed.
 */
export function hetznerConformance(opts: { specPath?: string; checkRequests?: boolean; env?: Record<string, string | undefined> } = {}): HetznerConformance {
  const specPath = opts.specPath ?? hetznerSpecPath;
  const validator = loadHetznerValidator(specPath, { checkRequests: opts.checkRequests });
  return {
    validator,
    skip: validator === null && !underCi(opts.env),
    require() {
      if (validator === null) throw new Error(`the Hetzner OpenAPI spec is missing at ${specPath}: under CI the spec-conformance tests must run, not skip`);
      return validator;
    },
  };
}

/**
 * `checkRequests: false` checks only what the server answered: for exchanges whose requests come from
 * another client (Hetzner's own libraries send shapes this older spec copy does not list, such as IDs
 * as numbers), the local cloud's answers are what is under test.
 */
export function loadHetznerValidator(specPath = hetznerSpecPath, opts: { checkRequests?: boolean } = {}): OpenApiValidator | null {
  const checkRequests = opts.checkRequests ?? true;
  if (!existsSync(specPath)) return null;
  const spec = openApiToJsonSchema(JSON.parse(readFileSync(specPath, 'utf8'))) as {
    paths: Record<string, Record<string, Operation>>;
  };
  const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: true });
  const addFormats = addFormatsModule as unknown as (a: Ajv) => void;
  addFormats(ajv);
  for (const f of ['int32', 'int64', 'double', 'float', 'decimal']) ajv.addFormat(f, true);
  ajv.addSchema({ ...(spec as object), $id: 'hcloud' } as Record<string, unknown>);
  const cache = new Map<string, ValidateFunction>();
  const validatorAt = (pointer: string): ValidateFunction => {
    let v = cache.get(pointer);
    if (!v) {
      v = ajv.compile({ $ref: `hcloud#${pointer}` });
      cache.set(pointer, v);
    }
    return v;
  };
  const templates = Object.keys(spec.paths).map((template) => ({
    template,
    pattern: new RegExp(`^${template.replace(/\{[^}]+\}/g, '[^/]+')}$`),
    literal: template.split('{').length,
  })).sort((a, b) => a.literal - b.literal);
  const escape = (s: string) => s.replace(/~/g, '~0').replace(/\//g, '~1');
  const describe = (v: ValidateFunction) => (v.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message}`).join('; ');

  function check(ex: Exchange): string[] {
    const problems: string[] = [];
    const method = ex.method.toLowerCase();
    const match = templates.find((t) => t.pattern.test(ex.path) && spec.paths[t.template]?.[method]);
    if (!match) return [`${ex.method} ${ex.path}: no such operation in the spec`];
    const op = spec.paths[match.template]![method]!;
    const base = `/paths/${escape(match.template)}/${method}`;
    const where = `${ex.method} ${ex.path} (${op.operationId})`;
    // Request: query parameters are known and typed.
    const params = op.parameters ?? [];
    for (const [name, values] of checkRequests ? Object.entries(ex.query) : []) {
      const index = params.findIndex((p) => p.in === 'query' && p.name === name);
      if (index < 0) {
        problems.push(`${where}: query parameter ${name} is not in the spec`);
        continue;
      }
      const schema = params[index]!.schema as { type?: string | string[] };
      const isArray = schema.type === 'array' || (Array.isArray(schema.type) && schema.type.includes('array'));
      const value = isArray ? values.map(coerce) : coerce(values[values.length - 1]!);
      const v = validatorAt(`${base}/parameters/${index}/schema`);
      if (!v(value)) problems.push(`${where}: query ${name}: ${describe(v)}`);
    }
    for (const p of params) if (checkRequests && p.in === 'query' && p.required && !(p.name in ex.query)) problems.push(`${where}: missing query ${p.name}`);
    // Request body.
    if (!checkRequests) {
      // Only the answer is checked.
    } else if (op.requestBody) {
      if (ex.requestBody === undefined) {
        if (op.requestBody.required) problems.push(`${where}: request body required`);
      } else {
        const v = validatorAt(`${base}/requestBody/content/application~1json/schema`);
        if (!v(ex.requestBody)) problems.push(`${where}: request body: ${describe(v)}`);
      }
    } else if (ex.requestBody !== undefined) {
      problems.push(`${where}: the operation takes no request body`);
    }
    // Response: the status is listed, and the body matches its schema.
    const status = String(ex.status);
    const key = op.responses[status] ? status : op.responses[`${status[0]}xx`] ? `${status[0]}xx` : op.responses.default ? 'default' : undefined;
    if (!key) {
      problems.push(`${where}: status ${status} is not a documented response`);
    } else {
      const content = op.responses[key]!.content;
      if (!content) {
        if (ex.responseBody !== undefined) problems.push(`${where}: status ${status} has no body in the spec`);
      } else {
        const v = validatorAt(`${base}/responses/${key}/content/application~1json/schema`);
        if (!v(ex.responseBody)) problems.push(`${where}: response ${status}: ${describe(v)}`);
      }
    }
    return problems;
  }

  const validator: OpenApiValidator = {
    check,
    problems: [],
    checked: 0,
    onExchange(ex) {
      validator.checked++;
      validator.problems.push(...check(ex));
    },
  };
  return validator;
}

function coerce(value: string): unknown {
  if (/^-?\d+$/.test(value)) return Number(value);
  if (value === 'true' || value === 'false') return value === 'true';
  return value;
}

/** OpenAPI 3.0 `nullable` is not JSON Schema: rewrite it so Ajv understands null. */
function openApiToJsonSchema(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(openApiToJsonSchema);
  if (!node || typeof node !== 'object') return node;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(node as Record<string, unknown>)) {
    if (k === 'example' || k === 'examples') continue;
    out[k] = openApiToJsonSchema(v);
  }
  if (out.nullable === true) {
    delete out.nullable;
    if (typeof out.type === 'string') {
      out.type = [out.type, 'null'];
      if (Array.isArray(out.enum)) out.enum = [...out.enum, null];
      return out;
    }
    return { anyOf: [out, { type: 'null' }] };
  }
  return out;
}

/**
 * Hetzner label selectors: comma-separated terms, all of which must hold.
 * `k=v`, `k==v`, `k!=v`, `k` (present), `!k` (absent), `k in (a,b)`, `k notin (a,b)`.
 */
export type LabelPredicate = (labels: Record<string, string>) => boolean;

const keyPattern = /^([a-z0-9A-Z][a-z0-9A-Z._-]{0,61}[a-z0-9A-Z]?\/)?[a-z0-9A-Z]([a-z0-9A-Z._-]{0,61}[a-z0-9A-Z])?$/;
const valuePattern = /^(|[a-z0-9A-Z]|[a-z0-9A-Z][a-z0-9A-Z._-]{0,61}[a-z0-9A-Z])$/;

/** Throws an Error with a message for `invalid_input` when the selector does not parse. */
export function parseLabelSelector(selector: string): LabelPredicate {
  const terms: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of selector) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      terms.push(current);
      current = '';
    } else current += ch;
  }
  terms.push(current);
  const predicates = terms.map((raw) => parseTerm(raw.trim()));
  return (labels) => predicates.every((p) => p(labels));
}

function parseTerm(term: string): LabelPredicate {
  let m: RegExpMatchArray | null;
  if ((m = term.match(/^(\S+)\s+(in|notin)\s+\(([^)]*)\)$/))) {
    const [, key, op, list] = m as unknown as [string, string, string, string];
    checkKey(key);
    const values = new Set(list.split(',').map((v) => v.trim()));
    return op === 'in' ? (l) => key in l && values.has(l[key]!) : (l) => !(key in l) || !values.has(l[key]!);
  }
  if ((m = term.match(/^([^=!\s]+)\s*(==|!=|=)\s*(\S*)$/))) {
    const [, key, op, value] = m as unknown as [string, string, string, string];
    checkKey(key);
    if (!valuePattern.test(value)) throw new Error(`invalid label value in selector: ${value}`);
    return op === '!=' ? (l) => l[key] !== value : (l) => l[key] === value;
  }
  if ((m = term.match(/^!\s*(\S+)$/))) {
    const key = m[1]!;
    checkKey(key);
    return (l) => !(key in l);
  }
  checkKey(term);
  return (l) => term in l;
}

function checkKey(key: string): void {
  if (!keyPattern.test(key)) throw new Error(`invalid label selector term: ${key}`);
}

/** Validates a labels object as Hetzner does; returns an error message or undefined. */
export function labelsProblem(labels: unknown): string | undefined {
  if (labels === undefined) return undefined;
  if (typeof labels !== 'object' || labels === null || Array.isArray(labels)) return 'labels must be an object';
  for (const [k, v] of Object.entries(labels)) {
    if (!keyPattern.test(k)) return `invalid label key: ${k}`;
    if (typeof v !== 'string' || !valuePattern.test(v)) return `invalid label value for ${k}`;
  }
  return undefined;
}

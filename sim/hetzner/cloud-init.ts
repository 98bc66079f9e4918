/**
 * The cloud-init subset the local cloud honours. User data is either `#cloud-config` followed by a
 * JSON document (JSON is YAML, and real cloud-init reads it the same way) or a `#!` script, which
 * runs once like runcmd. Anything else in the document is listed in `ignored`.
 */

export interface CloudUser {
  name: string;
  ssh_authorized_keys?: string[];
  shell?: string;
  homedir?: string;
  gecos?: string;
}

export interface CloudWriteFile {
  path: string;
  content?: string;
  encoding?: string;
  permissions?: string;
  owner?: string;
  append?: boolean;
  defer?: boolean;
}

export interface CloudConfig {
  /** Host keys: `ed25519_private`, `ed25519_public`, `ecdsa_private`, ... as cloud-init names them. */
  hostKeys: Record<string, string>;
  /** Remove host keys that came with the image (cloud-init's `ssh_deletekeys`, default true). */
  deleteImageHostKeys: boolean;
  users: CloudUser[];
  writeFiles: CloudWriteFile[];
  runcmd: (string | string[])[];
  /** A `#!` user-data script, run once after the first boot. */
  script?: string;
  disableRoot: boolean;
  /** Top-level keys the local cloud does not act on (reported in logs and docs). */
  ignored: string[];
}

const honoured = new Set(['ssh_keys', 'ssh_deletekeys', 'users', 'write_files', 'runcmd', 'disable_root']);

export function emptyCloudConfig(): CloudConfig {
  return { hostKeys: {}, deleteImageHostKeys: true, users: [], writeFiles: [], runcmd: [], disableRoot: false, ignored: [] };
}

/** Parses user data; throws with a message fit for `invalid_input` when it is not understood. */
export function parseUserData(userData: string | undefined): CloudConfig {
  const config = emptyCloudConfig();
  if (!userData) return config;
  if (userData.startsWith('#!')) {
    config.script = userData;
    return config;
  }
  if (!userData.startsWith('#cloud-config')) {
    config.ignored.push('(user data that is neither #cloud-config nor a #! script)');
    return config;
  }
  const body = userData.slice('#cloud-config'.length).trim();
  if (!body) return config;
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(body) as Record<string, unknown>;
  } catch {
    throw new Error('the local cloud reads #cloud-config written as JSON (valid YAML); this document is not JSON');
  }
  for (const key of Object.keys(doc)) if (!honoured.has(key)) config.ignored.push(key);
  const sshKeys = doc.ssh_keys as Record<string, unknown> | undefined;
  if (sshKeys) for (const [k, v] of Object.entries(sshKeys)) if (typeof v === 'string') config.hostKeys[k] = v;
  if (doc.ssh_deletekeys === false) config.deleteImageHostKeys = false;
  if (doc.disable_root === true) config.disableRoot = true;
  for (const u of (doc.users as unknown[] | undefined) ?? []) {
    if (u === 'default') continue;
    if (typeof u === 'string') config.users.push({ name: u });
    else if (u && typeof u === 'object' && typeof (u as CloudUser).name === 'string') config.users.push(u as CloudUser);
  }
  config.writeFiles = ((doc.write_files as CloudWriteFile[] | undefined) ?? []).filter((f) => typeof f?.path === 'string');
  config.runcmd = (doc.runcmd as (string | string[])[] | undefined) ?? [];
  return config;
}

/** cloud-init's runcmd script: one line per entry, lists shell-quoted, strings verbatim. */
export function runcmdScript(runcmd: (string | string[])[]): string {
  const lines = runcmd.map((entry) => (Array.isArray(entry) ? entry.map(shellQuote).join(' ') : entry));
  return `#!/bin/sh\n${lines.join('\n')}\n`;
}

function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./:=@-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

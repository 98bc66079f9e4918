import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { generateHostKey, generateEd25519 } from '../../activities/cloud/keys.ts';
import { renderGatewayConfig, renderUserData, serverLayout, userDataLimitBytes, type UserDataVariant } from '../../activities/cloud/user-data.ts';
import { runcmdScript } from '../../sim/hetzner/cloud-init.ts';

// Proves: the production (and local) cloud-init user data renders as #cloud-config + JSON, stays
// under Hetzner's 32 KiB, pins the Berth-generated host key, logs the customer in as berth, keeps
// every script a separate write_files entry, and every one of those scripts (and the runcmd script
// cloud-init builds) passes shellcheck with no finding.

interface Doc {
  users: { name: string; ssh_authorized_keys: string[] }[];
  ssh_keys: Record<string, string>;
  ssh_deletekeys: boolean;
  ssh_genkeytypes: string[];
  disable_root: boolean;
  write_files: { path: string; content: string; permissions: string }[];
  runcmd: (string | string[])[];
}

function render(variant: UserDataVariant) {
  const hostKey = generateHostKey('host');
  const customer = generateEd25519('customer');
  const text = renderUserData({ variant, hostKey, customerPublicKey: customer.publicKey });
  expect(text.startsWith('#cloud-config\n')).toBe(true);
  const doc = JSON.parse(text.slice('#cloud-config\n'.length)) as Doc;
  return { text, doc, hostKey, customer };
}

function shellcheck(name: string, script: string): string {
  const result = spawnSync('shellcheck', ['--severity=style', '--format=gcc', '-'], { input: script, encoding: 'utf8' });
  if (result.error) throw result.error;
  return result.status === 0 ? '' : `${name}:\n${result.stdout}${result.stderr}`;
}

describe('cloud-init user data', () => {
  for (const variant of ['production', 'local'] as const) {
    it(`${variant}: renders under 32 KiB with the pinned host key and the customer's login`, () => {
      const { text, doc, hostKey, customer } = render(variant);
      expect(Buffer.byteLength(text)).toBeLessThan(userDataLimitBytes);
      expect(doc.ssh_keys).toEqual({ ed25519_private: hostKey.privateKey, ed25519_public: hostKey.publicKey });
      expect(doc.ssh_deletekeys).toBe(true);
      expect(doc.ssh_genkeytypes).toEqual([]);
      expect(doc.disable_root).toBe(true);
      expect(doc.users).toEqual([expect.objectContaining({ name: 'berth', ssh_authorized_keys: [customer.publicKey] })]);
      // runcmd only names a script; the script itself is a write_files entry.
      expect(doc.runcmd).toEqual([['/bin/sh', serverLayout.installScript]]);
      const paths = doc.write_files.map((f) => f.path);
      expect(paths).toContain(serverLayout.installScript);
      expect(paths).toContain(serverLayout.applyScript);
      // No gateway token or customer private key in user data.
      expect(text).not.toContain(customer.privateKey.split('\n')[3]);
      expect(text).not.toMatch(/"token"/);
    });

    it(`${variant}: every script passes shellcheck`, () => {
      const { doc } = render(variant);
      const scripts = doc.write_files.filter((f) => f.content.startsWith('#!/bin/sh'));
      expect(scripts.length).toBeGreaterThanOrEqual(2);
      const findings = [
        ...scripts.map((f) => shellcheck(f.path, f.content)),
        shellcheck('runcmd', runcmdScript(doc.runcmd)),
      ].filter(Boolean);
      expect(findings).toEqual([]);
    });
  }

  it('production installs Node >= 22.19 and OpenClaw via npm, with a systemd unit on loopback 18789', () => {
    const { doc } = render('production');
    const install = doc.write_files.find((f) => f.path === serverLayout.installScript)!.content;
    expect(install).toContain('npm install -g');
    expect(install).toContain('openclaw@');
    expect(install).toMatch(/a > 22 \|\| \(a === 22 && b >= 19\)/);
    expect(install).toContain('sha256sum -c');
    const unit = doc.write_files.find((f) => f.path === `/etc/systemd/system/${serverLayout.unit}`)!;
    expect(unit.content).toContain('User=berth');
    expect(unit.content).toContain('openclaw gateway --port 18789');
    const sudoers = doc.write_files.find((f) => f.path.startsWith('/etc/sudoers.d/'))!;
    expect(sudoers.permissions).toBe('0440');
    expect(sudoers.content.trim().split('\n').at(-1)).toBe('berth ALL=(root) NOPASSWD: /usr/bin/systemctl restart openclaw-gateway.service');
  });

  it('the gateway config binds loopback 18789 with token auth and chat completions enabled', () => {
    const config = JSON.parse(renderGatewayConfig({ token: 'tok', model: 'openai/gpt-5', timeZone: 'Europe/Berlin' })) as Record<string, unknown>;
    expect(config).toEqual({
      gateway: {
        mode: 'local', port: 18789, bind: 'loopback', auth: { mode: 'token', token: 'tok' },
        http: { endpoints: { chatCompletions: { enabled: true } } },
      },
      agents: { defaults: { model: { primary: 'openai/gpt-5' }, userTimezone: 'Europe/Berlin' } },
    });
  });

  it('refuses user data over 32 KiB', () => {
    const hostKey = generateHostKey('host');
    expect(() => renderUserData({ variant: 'local', hostKey, customerPublicKey: `ssh-ed25519 ${'A'.repeat(40_000)}` })).toThrow(/32768/);
  });
});

/**
 * Hetzner's official client libraries, as the local cloud's strongest check: `hcloud` from PyPI (a
 * venv scripts/bootstrap makes under $BERTH_CACHE_DIR) and hcloud-go from the Go module proxy (the
 * program in test/official-clients/hcloud-go, built once per source change and cached there too).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const officialClientsDir = path.join(repoRoot, 'test/official-clients');
/** The versions scripts/bootstrap installs; the test refuses others so that a check means the same everywhere. */
export const hcloudPythonVersion = '2.27.0';
/** Go release hcloud-go v2.53 needs (≥ 1.26.10), fetched from the Go module proxy like the Temporal server's. */
export const goToolchain = 'go1.27.3';

function cacheDir(): string {
  return process.env.BERTH_CACHE_DIR ?? path.join(repoRoot, '.cache');
}

/** The venv's python with hcloud at the pinned version; throws (naming scripts/bootstrap) when it is not there. */
export async function hcloudPython(): Promise<string> {
  const python = path.join(cacheDir(), 'hcloud-python/bin/python');
  const version = existsSync(python)
    ? (await run(python, ['-c', 'import hcloud; print(hcloud.__version__)']).catch(() => ({ stdout: '' }))).stdout.trim()
    : '';
  if (version !== hcloudPythonVersion) {
    throw new Error(`hcloud ${hcloudPythonVersion} is not installed in ${path.dirname(path.dirname(python))} (found ${version || 'none'}): run scripts/bootstrap`);
  }
  return python;
}

/** A stamp of the Go program's sources: the cached binary is rebuilt when any of them changes. */
export function hcloudGoStamp(): string {
  const dir = path.join(officialClientsDir, 'hcloud-go');
  const hash = createHash('sha256');
  for (const file of ['go.mod', 'go.sum', 'main.go']) hash.update(readFileSync(path.join(dir, file)));
  return hash.digest('hex').slice(0, 16);
}

/** The hcloud-go program, built with `go build` on first use after a change of its sources (as scripts/bootstrap does). */
export async function hcloudGo(): Promise<string> {
  const binary = path.join(cacheDir(), 'bin/hcloud-go-check');
  const stampFile = path.join(cacheDir(), 'bin/.hcloud-go-check-version');
  const stamp = hcloudGoStamp();
  if (existsSync(binary) && existsSync(stampFile) && readFileSync(stampFile, 'utf8').trim() === stamp) return binary;
  mkdirSync(path.dirname(binary), { recursive: true });
  await run('go', ['build', '-trimpath', '-o', binary, '.'], {
    cwd: path.join(officialClientsDir, 'hcloud-go'),
    env: { ...process.env, GOTOOLCHAIN: goToolchain, GOFLAGS: '-mod=readonly' },
    timeout: 600_000,
  });
  writeFileSync(stampFile, `${stamp}\n`);
  return binary;
}

/**
 * Proves, without Docker: an image built from the Dockerfile holds no environment file. The build
 * context is what .dockerignore leaves (Docker's own matching rules, @balena/dockerignore), and the
 * image gets only what the Dockerfile's COPY lines name from it.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import type { Ignore } from '@balena/dockerignore';
import { expect, test } from 'vitest';
import { rootDir } from '../../lib/paths.ts';

// CommonJS whose types declare a default export that Node's ESM loader does not give: required instead.
const ignore = createRequire(import.meta.url)('@balena/dockerignore') as () => Ignore;

/** Secret files someone might have lying around in a checkout, at the root and deeper down. */
const planted = ['.env', '.env.production', '.env.local', 'api/.env', 'worker/.env.staging', 'deep/down/.env', 'web/routes/.env.example', 'lib/server.pem'];

function buildContext(): string[] {
  const tracked = execFileSync('git', ['ls-files'], { cwd: rootDir, encoding: 'utf8' }).split('\n').filter(Boolean);
  const rules = ignore().add(readFileSync(path.join(rootDir, '.dockerignore'), 'utf8').split('\n'));
  return rules.filter([...tracked, ...planted]);
}

/** The sources of the Dockerfile's COPY lines that copy from the build context (not --from=another stage). */
function copiedSources(): string[] {
  const lines = readFileSync(path.join(rootDir, 'Dockerfile'), 'utf8').split('\n').filter((l) => /^COPY\s/i.test(l) && !/--from=/.test(l));
  return lines.flatMap((l) => l.trim().split(/\s+/).slice(1, -1));
}

test('no environment file, at any depth, is in the build context', () => {
  const context = buildContext();
  expect(context.filter((f) => /(^|\/)\.env(\.|$)|\.pem$/.test(f))).toEqual([]);
  // The rest of what the image needs is still there.
  expect(context).toEqual(expect.arrayContaining(['package.json', 'package-lock.json', 'api/main.ts', 'worker/main.ts', 'web/root.tsx']));
});

test('the image copies named sources only, each present in the context, none of them an environment file', () => {
  const sources = copiedSources();
  expect(sources).not.toContain('.');
  expect(sources.some((s) => s.includes('*') || s.includes('.env'))).toBe(false);
  const context = buildContext();
  for (const source of sources) {
    expect(context.some((f) => f === source || f.startsWith(`${source}/`)), source).toBe(true);
  }
  const inImage = context.filter((f) => sources.some((s) => f === s || f.startsWith(`${s}/`)));
  expect(inImage.filter((f) => /(^|\/)\.env/.test(f))).toEqual([]);
});

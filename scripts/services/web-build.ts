import { createHash } from 'node:crypto';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { rootDir } from './paths.ts';
import { startProcess, type LineSink } from './process.ts';

/** Rebuilds the web app (`react-router build`, as the image does) when its sources changed since the last build. */
export async function buildWebIfNeeded(sink: LineSink): Promise<void> {
  const say = (line: string) => sink('berth', line, 'stdout');
  const hash = createHash('sha256');
  const files = ['react-router.config.ts', 'vite.config.ts', 'package-lock.json'];
  for (const entry of await readdir(path.join(rootDir, 'web'), { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) files.push(path.relative(rootDir, path.join(entry.parentPath, entry.name)));
  }
  for (const file of files.sort()) hash.update(file).update(await readFile(path.join(rootDir, file)));
  const digest = hash.digest('hex');
  const stampFile = path.join(rootDir, 'build', '.sources-sha256');
  const built = await readFile(stampFile, 'utf8').catch(() => '');
  if (built === digest && (await stat(path.join(rootDir, 'build', 'server', 'index.js')).catch(() => null))) {
    say('web app: build is up to date');
    return;
  }
  say('web app: building (react-router build)…');
  const build = await startProcess({ name: 'build', command: 'npx', args: ['react-router', 'build'], cwd: rootDir, sink });
  const code = await build.exited;
  if (code !== 0) throw new Error(`react-router build failed (exit ${code})`);
  await writeFile(stampFile, digest);
}

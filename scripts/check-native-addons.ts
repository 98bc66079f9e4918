/**
 * Fails (exit 1, naming each file) when node_modules holds a native addon built on node::ObjectWrap,
 * which would abort any Berth process that loads it (lib/native-addons.ts). Run by scripts/bootstrap.
 *   node scripts/check-native-addons.ts [dir]     (default: the repository's node_modules)
 */
import path from 'node:path';
import { findObjectWrapAddons } from '../lib/native-addons.ts';
import { rootDir } from './services/paths.ts';

const dir = path.resolve(process.argv[2] ?? path.join(rootDir, 'node_modules'));
const bad = findObjectWrapAddons(dir);
if (bad.length > 0) {
  process.stderr.write(`native addons built on node::ObjectWrap abort Node 24.19+ processes when garbage-collected; `
    + `deny their install scripts in package.json (allowScripts) and reinstall:\n${bad.map((f) => `  ${path.relative(rootDir, f)}`).join('\n')}\n`);
  process.exit(1);
}
process.stdout.write(`no native addon built on node::ObjectWrap under ${path.relative(rootDir, dir) || '.'}\n`);

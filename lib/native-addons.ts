/**
 * Native addons that can abort a Berth process. Since Node 24.19, freeing an object of an addon built
 * on `node::ObjectWrap` (the pre-N-API C++ helper) trips `Assertion failed: (env) != nullptr` in
 * `node::RemoveEnvironmentCleanupHook` and aborts the whole process (nodejs/node#65446; seen with
 * ssh2's optional `sshcrypto.node`, mscdex/ssh2#1511). Such an addon carries the C++ type name of
 * `node::ObjectWrap` (`N4node10ObjectWrapE`, its typeinfo string) in its binary, which is how it is
 * recognised here. N-API addons (Temporal's core bridge, swc, rolldown) do not.
 *
 * Berth's processes check what they loaded at start (assertNoObjectWrapAddonLoaded); scripts/bootstrap
 * and the unit tier check node_modules (findObjectWrapAddons).
 */
import { closeSync, openSync, readdirSync, readSync } from 'node:fs';
import path from 'node:path';

/** The Itanium C++ ABI name of `node::ObjectWrap`, present in the typeinfo of every subclass. */
export const objectWrapSignature = Buffer.from('N4node10ObjectWrapE', 'latin1');

/** True when the file at `file` (a `.node` shared object) is built on `node::ObjectWrap`. Reads it in 1 MiB blocks. */
export function isObjectWrapAddon(file: string): boolean {
  const fd = openSync(file, 'r');
  try {
    const block = Buffer.alloc(1024 * 1024 + objectWrapSignature.length);
    let carried = 0;
    for (;;) {
      const read = readSync(fd, block, carried, block.length - carried, null);
      if (read === 0) return false;
      const filled = carried + read;
      if (block.subarray(0, filled).includes(objectWrapSignature)) return true;
      // Keep the tail, so a signature split over two blocks is still found.
      carried = Math.min(filled, objectWrapSignature.length - 1);
      block.copy(block, 0, filled - carried, filled);
    }
  } finally {
    closeSync(fd);
  }
}

/** Every `.node` file under `dir` (e.g. node_modules), depth first; unreadable folders are skipped. */
export function nativeAddonsUnder(dir: string): string[] {
  const found: string[] = [];
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return found;
  }
  for (const entry of entries) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) found.push(...nativeAddonsUnder(full));
    else if (entry.isFile() && entry.name.endsWith('.node')) found.push(full);
  }
  return found;
}

/** The `.node` files under `dir` built on `node::ObjectWrap`. */
export function findObjectWrapAddons(dir: string): string[] {
  return nativeAddonsUnder(dir).filter(isObjectWrapAddon);
}

/** The `.node` shared objects this process has loaded (from Node's diagnostic report). */
export function loadedNativeAddons(): string[] {
  const report = process.report.getReport() as { sharedObjects?: string[] };
  return (report.sharedObjects ?? []).filter((file) => file.endsWith('.node'));
}

/** Thrown when a process loaded an addon that can abort it. */
export class ObjectWrapAddonLoaded extends Error {
  readonly processName: string;
  readonly files: string[];
  constructor(processName: string, files: string[]) {
    super(`${processName} loaded native addons built on node::ObjectWrap, which abort Node 24.19+ when garbage-collected: ${files.join(', ')}. `
      + 'Deny their install scripts (package.json allowScripts) or remove the dependency.');
    this.name = 'ObjectWrapAddonLoaded';
    this.processName = processName;
    this.files = files;
  }
}

/** Throws ObjectWrapAddonLoaded if this process has loaded an addon built on `node::ObjectWrap`. */
export function assertNoObjectWrapAddonLoaded(processName: string): void {
  const bad = loadedNativeAddons().filter(isObjectWrapAddon);
  if (bad.length > 0) throw new ObjectWrapAddonLoaded(processName, bad);
}

/** For a process's entry point: prints why and exits 1 if an addon that can abort it was loaded. */
export function exitIfObjectWrapAddonLoaded(processName: string): void {
  try {
    assertNoObjectWrapAddonLoaded(processName);
  } catch (err) {
    if (!(err instanceof ObjectWrapAddonLoaded)) throw err;
    process.stderr.write(`${err.message}\n`);
    process.exit(1);
  }
}

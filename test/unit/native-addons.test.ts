/**
 * Proves: no native addon built on node::ObjectWrap is installed (one would abort Berth's processes on
 * Node 24.19+ when garbage-collected), and the check recognises such an addon by its typeinfo name even
 * across its read blocks, while passing N-API addons.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { findObjectWrapAddons, isObjectWrapAddon, nativeAddonsUnder, objectWrapSignature } from '../../lib/native-addons.ts';
import { rootDir } from '../../scripts/services/paths.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'berth-addons-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test('node_modules holds native addons, none of them built on node::ObjectWrap', () => {
  const nodeModules = path.join(rootDir, 'node_modules');
  expect(nativeAddonsUnder(nodeModules).length).toBeGreaterThan(0);
  expect(findObjectWrapAddons(nodeModules).map((f) => path.relative(rootDir, f))).toEqual([]);
});

test('an addon is recognised by the ObjectWrap typeinfo name, also when it straddles a read block', () => {
  const at = (offset: number) => {
    const bytes = Buffer.alloc(3 * 1024 * 1024, 0x41);
    objectWrapSignature.copy(bytes, offset);
    const file = path.join(dir, `at-${offset}.node`);
    writeFileSync(file, bytes);
    return file;
  };
  expect(isObjectWrapAddon(at(10))).toBe(true);
  expect(isObjectWrapAddon(at(1024 * 1024 - 5))).toBe(true);
  expect(isObjectWrapAddon(at(3 * 1024 * 1024 - objectWrapSignature.length))).toBe(true);
  const clean = path.join(dir, 'clean.node');
  writeFileSync(clean, Buffer.concat([Buffer.alloc(2 * 1024 * 1024, 0x41), objectWrapSignature.subarray(0, 10)]));
  expect(isObjectWrapAddon(clean)).toBe(false);
  const temporalBridge = nativeAddonsUnder(path.join(rootDir, 'node_modules', '@temporalio', 'core-bridge')).find((f) => f.includes('x86_64-unknown-linux-gnu'));
  expect(temporalBridge).toBeDefined();
  expect(isObjectWrapAddon(temporalBridge!)).toBe(false);
});

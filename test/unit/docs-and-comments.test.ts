/**
 * The project speaks of itself: comments cite invariants from docs/invariants.md (never an issue
 * number), every decision says when it was taken and whether it still holds, and an error's message
 * is read one way (lib/errors.ts errorMessage; workflow code keeps its own failureMessage).
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { rootDir } from '../../scripts/services/paths.ts';

const skipped = new Set(['node_modules', '.git', '.cache', '.data', 'build', '.react-router', 'test-results', 'histories']);

/** The project's own files with one of `extensions`, as paths from the root. */
function files(extensions: string[], dir = ''): string[] {
  return readdirSync(path.join(rootDir, dir), { withFileTypes: true }).flatMap((entry) => {
    const relative = path.join(dir, entry.name);
    if (entry.isDirectory()) return skipped.has(entry.name) || entry.name.startsWith('.changed-') ? [] : files(extensions, relative);
    return extensions.some((ext) => entry.name.endsWith(ext)) ? [relative] : [];
  });
}

const code = files(['.ts', '.tsx', '.js', '.sh', '.py', '.go']);
const read = (file: string): string => readFileSync(path.join(rootDir, file), 'utf8');
const thisFile = path.relative(rootDir, import.meta.filename);

describe('comments and docs', () => {
  it('every "invariant N" in the code points to docs/invariants.md, which has that invariant', () => {
    const invariants = read('docs/invariants.md');
    const problems: string[] = [];
    for (const file of code.filter((f) => f !== thisFile)) {
      const text = read(file);
      for (const match of text.matchAll(/\binvariants? (\d)/gi)) {
        const near = text.slice(Math.max(0, match.index - 300), match.index + 300);
        if (!near.includes('docs/invariants.md')) problems.push(`${file}: "${match[0]}" does not point to docs/invariants.md`);
        if (!invariants.includes(`## ${match[1]}. `)) problems.push(`${file}: invariant ${match[1]} is not in docs/invariants.md`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('no comment or doc cites an issue number', () => {
    const docs = files(['.md']).filter((f) => !f.startsWith('seed'));
    const cited = [...code, ...docs].filter((f) => f !== thisFile).flatMap((file) =>
      [...read(file).matchAll(/\bissues? #?\d+/gi)].map((m) => `${file}: ${m[0]}`));
    expect(cited).toEqual([]);
  });

  it('every decision has Date and Status lines under its title', () => {
    const decisions = files(['.md'], 'docs/decisions');
    expect(decisions.length).toBeGreaterThan(10);
    const missing = decisions.filter((file) => !/^# \d{3} — .+\n\nDate: \d{4}-\d{2}-\d{2}\nStatus: \S/.test(read(file)));
    expect(missing).toEqual([]);
  });

  it("decision 001's hibernation line says it is superseded by 008", () => {
    expect(read('docs/decisions/001-lifecycle-workflow.md')).toMatch(/Superseded by 008[^\n]*\n\s+\*\*Hibernation deletes a server/);
  });
});

it('an error message is read one way: errorMessage (lib/errors.ts), outside workflow code', () => {
  const copies = code.filter((f) => f !== 'lib/errors.ts' && !f.startsWith('workflows/') && f !== thisFile)
    .filter((f) => /(\w+) instanceof Error \? \1\.message : String\(\1\)/.test(read(f)));
  expect(copies).toEqual([]);
});

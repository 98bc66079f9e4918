import { expect, test } from 'vitest';
import { safeNext } from '../../web/auth.server.ts';

test('`next` keeps paths on this site, normalised', () => {
  expect(safeNext('/settings')).toBe('/settings');
  expect(safeNext('/billing?notice=success#plans')).toBe('/billing?notice=success#plans');
  expect(safeNext('/a/../terminal')).toBe('/terminal');
  expect(safeNext(null)).toBe('/dashboard');
  expect(safeNext('')).toBe('/dashboard');
});

test('`next` refuses every way of naming another host', () => {
  for (const next of ['//evil.example', '/\\evil.example', '\\\\evil.example', '/%09/evil.example', '/\t/evil.example', '/\n/evil.example',
    '/\r/evil.example', '/.//evil.example', '/a/..//evil.example', '/%2e//evil.example', '/%2F/evil.example', '/%5Cevil.example',
    'https://evil.example', 'javascript:alert(1)', ' /settings', '/%E0%A4%A', `/${'a'.repeat(2001)}`]) {
    expect(safeNext(next), JSON.stringify(next)).toBe('/dashboard');
  }
});

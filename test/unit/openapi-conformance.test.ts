/**
 * The Hetzner spec-conformance tests skip themselves only outside CI: under CI a missing spec fails
 * them (test/support/openapi.ts), so a check that cannot run never passes unnoticed.
 */
import { expect, it } from 'vitest';
import { hetznerConformance, underCi } from '../support/openapi.ts';

const missing = '/nonexistent/specs/hetzner-cloud.openapi.json';

it('CI is the CI variable set to anything but empty, false or 0', () => {
  expect([undefined, '', 'false', 'FALSE', '0'].map((CI) => underCi({ CI }))).toEqual([false, false, false, false, false]);
  expect(['true', '1', 'yes', 'woodpecker'].map((CI) => underCi({ CI }))).toEqual([true, true, true, true]);
});

it('without the spec: skipped locally, failing under CI with the missing path named', () => {
  const local = hetznerConformance({ specPath: missing, env: {} });
  expect(local).toMatchObject({ validator: null, skip: true });
  const ci = hetznerConformance({ specPath: missing, env: { CI: 'true' } });
  expect(ci).toMatchObject({ validator: null, skip: false });
  expect(() => ci.require()).toThrow(`the Hetzner OpenAPI spec is missing at ${missing}`);
});

it.skipIf(hetznerConformance().skip)('with the spec: never skipped, the validator checks exchanges', () => {
  for (const env of [{}, { CI: 'true' }]) {
    const conformance = hetznerConformance({ env });
    expect(conformance.skip).toBe(false);
    expect(conformance.require().check({
      method: 'GET', path: '/servers/1', template: '/servers/{id}', query: {}, requestBody: undefined, status: 200, responseBody: { server: { id: 1 } },
    })).not.toEqual([]);
  }
});

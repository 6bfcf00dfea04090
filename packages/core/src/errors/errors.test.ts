import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_CATALOGUE, PalisadeError, renderErrorsDoc } from '../index.js';

describe('error catalogue', () => {
  it('docs/errors.md is in sync with the catalogue (run `npm run docs:errors`)', () => {
    const doc = readFileSync(new URL('../../../../docs/errors.md', import.meta.url), 'utf8');
    expect(doc).toBe(renderErrorsDoc());
  });

  it('codes are PAL_-prefixed upper snake case with 4xx/5xx statuses', () => {
    for (const [code, spec] of Object.entries(ERROR_CATALOGUE)) {
      expect(code).toMatch(/^PAL_[A-Z0-9_]+$/);
      expect(spec.status).toBeGreaterThanOrEqual(400);
      expect(spec.status).toBeLessThan(600);
    }
  });

  it('never serializes the cause', () => {
    const e = new PalisadeError('PAL_INTERNAL', undefined, { cause: new Error('secret key material 0xdeadbeef') });
    expect(JSON.stringify(e)).not.toContain('deadbeef');
    expect(JSON.stringify(e.toProblem('/x', 'r1'))).not.toContain('deadbeef');
    expect(e.toProblem('/x', 'r1')).toEqual({ type: 'https://palisade.dev/errors/PAL_INTERNAL', title: 'Internal error', status: 500, detail: 'Internal error', code: 'PAL_INTERNAL', instance: '/x', request_id: 'r1' });
  });
});

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { routePermissions } from '../../testing/route-permissions.js';
import { renderAuthzDoc } from './doc.js';

describe('authorization doc', () => {
  it('docs/authz.md is in sync with the routes and roles (run `npm run docs:authz`)', async () => {
    const doc = readFileSync(new URL('../../../../../docs/authz.md', import.meta.url), 'utf8');
    expect(doc).toBe(renderAuthzDoc(await routePermissions()));
  });
});

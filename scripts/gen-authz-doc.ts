import { writeFileSync } from 'node:fs';
import { renderAuthzDoc } from '../packages/server/src/engines/authz/doc.ts';
import { routePermissions } from '../packages/server/src/testing/route-permissions.ts';

writeFileSync(new URL('../docs/authz.md', import.meta.url), renderAuthzDoc(await routePermissions()));
console.log('wrote docs/authz.md');

import { hasPermission } from '../../kernel/auth/permissions.js';
import { permissionsOf, ROLES } from '../../kernel/auth/roles.js';

/** A route and the permission it declares in `config.permission` (null: public). */
export interface RoutePermission {
  method: string;
  /** The route's URL pattern (`/v1/keys/:key_id/encrypt`). */
  url: string;
  permission: string | null;
}

/** Permissions that handlers check themselves, beyond their route's (where, and for what). */
export const HANDLER_PERMISSIONS: ReadonlyArray<{ permission: string; where: string }> = [
  { permission: 'authz:decisions:explain-any', where: '`POST /v1/authz/explain` for a principal other than the caller' },
  { permission: 'authz:grants:approve', where: 'approving a requested grant (`POST /v1/authz/grants`) at `/v1/approvals/:id/approve`, besides `approvals:requests:decide`; `*` when the role asked for carries `*`' },
  { permission: 'gateway:signing-keys:manage', where: 'the signing-key routes (`/v1/gateway/signing-keys`) for a key or a list of another principal than the caller: creating one for them, listing theirs (or everyone\'s), revoking theirs' },
  { permission: 'oauth:tokens:introspect', where: '`POST /v1/oauth/introspect` with a bearer credential (a client may introspect its own tokens without it)' },
  { permission: 'oauth:tokens:revoke', where: '`POST /v1/oauth/revoke` with a bearer credential (a client may revoke its own tokens without it)' },
];

const cell = (s: string) => s.replace(/\|/g, '\\|');

function tierCells(permission: string): string {
  return ROLES.map((r) => (hasPermission(permissionsOf([r]), permission) ? '✓' : ' ')).join(' | ');
}

/**
 * `docs/authz.md`: the built-in tiers and, for every permission a route requires, which tiers hold it. Rendered from
 * the routes (`testing/route-permissions.ts`) and `kernel/auth/roles.ts` by `npm run docs:authz`; a test fails when
 * the file drifts.
 */
export function renderAuthzDoc(routes: readonly RoutePermission[]): string {
  const byPermission = new Map<string, string[]>();
  for (const r of routes) {
    if (r.permission === null) continue;
    const list = byPermission.get(r.permission) ?? [];
    list.push(`\`${r.method} ${r.url}\``);
    byPermission.set(r.permission, list);
  }
  const permissions = [...byPermission.keys()].sort();
  const pub = routes.filter((r) => r.permission === null);
  const header = `| permission | ${ROLES.join(' | ')} | routes |`;
  const rule = `|---|${ROLES.map(() => ':-:').join('|')}|---|`;
  return [
    '# Authorization: roles and permissions',
    '',
    'Every HTTP route requires one permission, an `engine:resource:action` string such as `kms:keys:create`. A',
    'granted permission matches a required one segment by segment: `*` matches any one segment, and a trailing `*`',
    'matches everything below it (`kms:*` covers `kms:keys:create`; the owner holds `*`).',
    '',
    `Users, groups and service identities carry roles. The ${ROLES.length} built-in roles are tiers, each a strict superset of the`,
    'one below:',
    '',
    ROLES.map((r) => `\`${r}\``).join(' < '),
    '',
    'On top of them the authorization engine has custom roles (`/v1/authz/roles`), bindings of a role to a user,',
    'group or service identity in a scope (`*`, `org:<id>`, `org:<id>/project:<name>`), optionally until a time',
    '(`/v1/authz/bindings`, and requested grants at `/v1/authz/grants`), and policy rules that allow, deny or',
    'require approval (`/v1/authz/policy`, the language in [authz-policies.md](authz-policies.md)); a deny rule',
    'overrides every allow. `POST /v1/authz/explain` shows which',
    'roles, bindings and rules decide a request. The API is described in the OpenAPI document the server serves at',
    '`/v1/openapi.json`; the design is in [ADR 0011](adr/0011-authorization.md).',
    '',
    'This file is generated from the routes themselves and `packages/server/src/kernel/auth/roles.ts` by',
    '`npm run docs:authz`; a test fails when they disagree.',
    '',
    '## Permission matrix',
    '',
    `${permissions.length} permissions required by ${routes.length - pub.length} routes; ✓ marks the built-in tiers that hold each.`,
    '',
    header,
    rule,
    ...permissions.map((p) => `| \`${cell(p)}\` | ${tierCells(p)} | ${byPermission.get(p)!.join(', ')} |`),
    '',
    '## Permissions checked by handlers',
    '',
    'These are not a route\'s own permission; the handler asks for them in the cases named.',
    '',
    header.replace('| routes |', '| where |'),
    rule,
    ...HANDLER_PERMISSIONS.map((h) => `| \`${cell(h.permission)}\` | ${tierCells(h.permission)} | ${cell(h.where)} |`),
    '',
    '## Public routes',
    '',
    `${pub.length} routes declare no permission (\`permission: null\`): they serve nothing secret (health, discovery, PKI`,
    'distribution points, pages) or authenticate the caller by other means (sign-in, ACME\'s signed requests, OAuth',
    `client authentication, unseal key shares): ${pub.map((r) => `\`${r.method} ${r.url}\``).join(', ')}.`,
    '',
  ].join('\n');
}

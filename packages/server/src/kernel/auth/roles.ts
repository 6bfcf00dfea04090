/**
 * The six built-in role tiers, each a strict superset of the one below. Users, groups and service identities carry
 * role names; a principal's permissions are the union of its roles' permissions. The authorization engine adds
 * custom roles, scoped and time-boxed bindings, and policy rules on top (engines/authz); `docs/authz.md` has the
 * permission matrix, generated from this table.
 */
const TIERS: ReadonlyArray<{ role: string; adds: readonly string[] }> = [
  {
    role: 'viewer',
    adds: ['auth:self:*', 'kms:keys:read', 'kms:keys:list', 'pki:ca:read', 'pki:certificates:read', 'identity:users:read', 'identity:services:read', 'identity:groups:read', 'authz:roles:read', 'authz:decisions:explain', 'authz:grants:request'],
  },
  { role: 'agent', adds: ['kms:encrypt', 'kms:decrypt', 'kms:data-key', 'kms:hmac', 'kms:sign', 'kms:verify', 'pki:certificates:issue', 'gateway:*:invoke', 'gateway:signing-keys:create'] },
  { role: 'developer', adds: ['kms:keys:create', 'kms:keys:rotate', 'kms:keys:update', 'kms:rewrap', 'auth:api-keys:create', 'auth:api-keys:list'] },
  {
    role: 'operator',
    adds: ['pki:certificates:revoke', 'acme:eab:*', 'identity:services:*', 'audit:events:read', 'approvals:requests:list', 'approvals:requests:read', 'system:metrics:read', 'auth:api-keys:revoke', 'authz:bindings:read', 'authz:policies:read', 'authz:decisions:explain-any'],
  },
  {
    role: 'security-admin',
    adds: ['identity:*', 'scim:*', 'audit:*', 'approvals:requests:decide', 'kms:keys:disable', 'kms:keys:enable', 'kms:keys:destroy', 'kms:keys:export', 'kms:keys:import', 'pki:*', 'sys:seal:seal', 'oauth:*', 'authz:*', 'gateway:*'],
  },
  { role: 'owner', adds: ['*'] },
];

export const ROLES: readonly string[] = TIERS.map((t) => t.role);

const PERMISSIONS: ReadonlyMap<string, readonly string[]> = new Map(TIERS.map((t, i) => [t.role, TIERS.slice(0, i + 1).flatMap((x) => x.adds)]));

export function isRole(name: string): boolean {
  return PERMISSIONS.has(name);
}

/** The union of the permissions of `roles` (unknown names grant nothing). */
export function permissionsOf(roles: Iterable<string>): string[] {
  const out = new Set<string>();
  for (const r of roles) for (const p of PERMISSIONS.get(r) ?? []) out.add(p);
  return [...out];
}

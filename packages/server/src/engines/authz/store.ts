import { PalisadeError, randomId, sha256, type AuthzBinding, type AuthzRole, type PolicyVersion } from '@palisade/core';
import type { Executor } from '../../storage/database.js';
import type { AuthzBindingTable, AuthzRoleTable } from '../../storage/schema.js';
import { isRole, permissionsOf, ROLES } from '../../kernel/auth/roles.js';
import type { AuthGeneration } from '../../kernel/auth/generation.js';
import { EMPTY_POLICY, parsePolicy } from './policy.js';
import type { BindingRow, Snapshot } from './decide.js';

/** Expired grants stay in the snapshot this long, so that `explain` can say a denial came from an expiry. */
const EXPIRED_KEPT_MS = 7 * 86_400_000;

function toBinding(r: AuthzBindingTable): AuthzBinding {
  return { id: r.id, subject: r.subject, role: r.role, scope: r.scope, expires_at: r.expires_at, reason: r.reason, created_by: r.created_by, created_at: r.created_at, approval_id: r.approval_id };
}

function toRole(r: AuthzRoleTable): AuthzRole {
  return { name: r.name, description: r.description, permissions: JSON.parse(r.permissions) as string[], builtin: false, tier: null };
}

export function builtinRoles(): AuthzRole[] {
  return ROLES.map((name, i) => ({ name, description: null, permissions: permissionsOf([name]), builtin: true, tier: i + 1 }));
}

/** Roles, bindings and policy versions in the database; every write bumps the authorization generation. */
export class AuthzStore {
  constructor(
    private readonly generation: AuthGeneration,
    private readonly clock: () => Date,
  ) {}

  // ------------------------------------------------------------------------------------------------ roles

  async listRoles(db: Executor): Promise<AuthzRole[]> {
    const custom = await db.selectFrom('authz_roles').selectAll().orderBy('name').execute();
    return [...builtinRoles(), ...custom.map(toRole)];
  }

  async getRole(db: Executor, name: string): Promise<AuthzRole> {
    const builtin = builtinRoles().find((r) => r.name === name);
    if (builtin) return builtin;
    const r = await db.selectFrom('authz_roles').selectAll().where('name', '=', name).executeTakeFirst();
    if (!r) throw new PalisadeError('PAL_AUTHZ_ROLE_NOT_FOUND', `no role ${name}`);
    return toRole(r);
  }

  async createRole(db: Executor, input: { name: string; description?: string | undefined; permissions: string[] }, by: string): Promise<AuthzRole> {
    if (isRole(input.name) || (await db.selectFrom('authz_roles').select('name').where('name', '=', input.name).executeTakeFirst())) {
      throw new PalisadeError('PAL_AUTHZ_ROLE_EXISTS', `a role named ${input.name} exists`);
    }
    const now = this.clock().toISOString();
    await db.insertInto('authz_roles').values({ name: input.name, description: input.description ?? null, permissions: JSON.stringify(input.permissions), created_by: by, created_at: now, updated_at: now }).execute();
    await this.generation.bump(db);
    return { name: input.name, description: input.description ?? null, permissions: input.permissions, builtin: false, tier: null };
  }

  async updateRole(db: Executor, name: string, patch: { description?: string | undefined; permissions?: string[] | undefined }): Promise<{ before: AuthzRole; after: AuthzRole }> {
    const before = await this.getRole(db, name);
    if (before.builtin) throw new PalisadeError('PAL_AUTHZ_ROLE_BUILTIN', `${name} is a built-in tier`);
    const after = { ...before, ...(patch.description !== undefined ? { description: patch.description } : {}), ...(patch.permissions ? { permissions: patch.permissions } : {}) };
    await db.updateTable('authz_roles').set({ description: after.description, permissions: JSON.stringify(after.permissions), updated_at: this.clock().toISOString() }).where('name', '=', name).execute();
    await this.generation.bump(db);
    return { before, after };
  }

  async deleteRole(db: Executor, name: string): Promise<AuthzRole> {
    const role = await this.getRole(db, name);
    if (role.builtin) throw new PalisadeError('PAL_AUTHZ_ROLE_BUILTIN', `${name} is a built-in tier`);
    const bound = await db.selectFrom('authz_bindings').select('id').where('role', '=', name).limit(1).executeTakeFirst();
    if (bound) throw new PalisadeError('PAL_AUTHZ_ROLE_IN_USE', `role ${name} is bound (${bound.id}); delete its bindings first`);
    await db.deleteFrom('authz_roles').where('name', '=', name).execute();
    await this.generation.bump(db);
    return role;
  }

  // --------------------------------------------------------------------------------------------- bindings

  async listBindings(db: Executor, q: { subject?: string | undefined; role?: string | undefined; active?: boolean }): Promise<AuthzBinding[]> {
    let sel = db.selectFrom('authz_bindings').selectAll().orderBy('created_at', 'desc').orderBy('id');
    if (q.subject) sel = sel.where('subject', '=', q.subject);
    if (q.role) sel = sel.where('role', '=', q.role);
    if (q.active) {
      const now = this.clock().toISOString();
      sel = sel.where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]));
    }
    return (await sel.limit(1000).execute()).map(toBinding);
  }

  async createBinding(db: Executor, input: { subject: string; role: string; scope: string; expires_at: string | null; reason: string | null; approval_id?: string | null }, by: string): Promise<AuthzBinding> {
    await this.getRole(db, input.role);
    const row: AuthzBindingTable = { id: randomId('bnd'), subject: input.subject, role: input.role, scope: input.scope, expires_at: input.expires_at, reason: input.reason, approval_id: input.approval_id ?? null, created_by: by, created_at: this.clock().toISOString() };
    await db.insertInto('authz_bindings').values(row).execute();
    await this.generation.bump(db);
    return toBinding(row);
  }

  async deleteBinding(db: Executor, id: string): Promise<AuthzBinding> {
    const row = await db.selectFrom('authz_bindings').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw new PalisadeError('PAL_AUTHZ_BINDING_NOT_FOUND', `no binding ${id}`);
    await db.deleteFrom('authz_bindings').where('id', '=', id).execute();
    await this.generation.bump(db);
    return toBinding(row);
  }

  // --------------------------------------------------------------------------------------------- policies

  async currentPolicy(db: Executor, withSource = true): Promise<PolicyVersion> {
    const row = await db.selectFrom('authz_policies').selectAll().orderBy('version', 'desc').limit(1).executeTakeFirst();
    if (!row) return { version: 0, sha256: sha256(Buffer.from('')).toString('hex'), rules: 0, created_at: null, created_by: null, comment: null, ...(withSource ? { source: 'version: 1\nrules: []\n' } : {}) };
    return { version: row.version, sha256: row.sha256, rules: row.rules, created_at: row.created_at, created_by: row.created_by, comment: row.comment, ...(withSource ? { source: row.source } : {}) };
  }

  async policyVersions(db: Executor): Promise<PolicyVersion[]> {
    const rows = await db.selectFrom('authz_policies').select(['version', 'sha256', 'rules', 'created_at', 'created_by', 'comment']).orderBy('version', 'desc').limit(500).execute();
    return rows;
  }

  async policyVersion(db: Executor, version: number): Promise<PolicyVersion> {
    const row = await db.selectFrom('authz_policies').selectAll().where('version', '=', version).executeTakeFirst();
    if (!row) throw new PalisadeError('PAL_AUTHZ_POLICY_NOT_FOUND', `no policy version ${version}`);
    return row;
  }

  /** Validate and store `source` as the next version (the active one). */
  async putPolicy(db: Executor, source: string, comment: string | null, by: string): Promise<{ previous: PolicyVersion; current: PolicyVersion }> {
    const parsed = parsePolicy(source);
    const previous = await this.currentPolicy(db, false);
    const current: PolicyVersion = { version: previous.version + 1, sha256: sha256(Buffer.from(source, 'utf8')).toString('hex'), rules: parsed.document.rules.length, created_at: this.clock().toISOString(), created_by: by, comment };
    await db.insertInto('authz_policies').values({ version: current.version, source, sha256: current.sha256, rules: current.rules, comment, created_by: by, created_at: current.created_at! }).execute();
    await this.generation.bump(db);
    return { previous, current };
  }

  // --------------------------------------------------------------------------------------------- snapshot

  async snapshot(db: Executor): Promise<Snapshot> {
    const [custom, bindings, policyRow] = await Promise.all([
      db.selectFrom('authz_roles').select(['name', 'permissions']).execute(),
      db.selectFrom('authz_bindings').select(['id', 'subject', 'role', 'scope', 'expires_at', 'reason']).where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', new Date(this.clock().getTime() - EXPIRED_KEPT_MS).toISOString())])).execute(),
      db.selectFrom('authz_policies').select(['version', 'source']).orderBy('version', 'desc').limit(1).executeTakeFirst(),
    ]);
    const roles = new Map<string, readonly string[]>(ROLES.map((r) => [r, permissionsOf([r])]));
    for (const r of custom) roles.set(r.name, JSON.parse(r.permissions) as string[]);
    const bySubject = new Map<string, BindingRow[]>();
    for (const b of bindings) {
      const list = bySubject.get(b.subject) ?? [];
      list.push({ id: b.id, subject: b.subject, role: b.role, scope: b.scope, expires_at: b.expires_at === null ? null : Date.parse(b.expires_at), reason: b.reason });
      bySubject.set(b.subject, list);
    }
    return { policy: policyRow ? parsePolicy(policyRow.source) : EMPTY_POLICY, policyVersion: policyRow?.version ?? 0, roles, bindingsBySubject: bySubject };
  }
}

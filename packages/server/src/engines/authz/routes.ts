import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import {
  Approval,
  AuthzBinding,
  AuthzBindingList,
  AuthzRole,
  AuthzRoleList,
  CreateBindingRequest,
  CreateRoleRequest,
  Explanation,
  ExplainRequest,
  GrantRequest,
  ListBindingsQuery,
  PalisadeError,
  PolicySource,
  sha256,
  PolicyValidation,
  PolicyVersion,
  PolicyVersionList,
  UpdateRoleRequest,
  type PolicyProblem,
} from '@palisade/core';
import { canDelegate } from '../../kernel/auth/permissions.js';
import type { ApprovalService } from '../../kernel/approvals/approvals.js';
import { GRANT_ACTION, type AuthzEngine } from './engine.js';
import { parsePolicy } from './policy.js';

const tags = ['authz'];
const security = [{ bearer: [] }];
const RoleParams = Type.Object({ name: Type.String({ maxLength: 64 }) });
const IdParams = Type.Object({ id: Type.String({ maxLength: 64 }) });
const VersionParams = Type.Object({ version: Type.Integer({ minimum: 1 }) });

/** Least privilege: nobody hands out a role carrying a permission they do not hold themselves. */
function assertCanDelegate(req: FastifyRequest, role: { name: string; permissions: readonly string[] }): void {
  const excess = role.permissions.filter((p) => !canDelegate(req.principal!.permissions, p));
  if (excess.length > 0) throw new PalisadeError('PAL_AUTH_GRANT_EXCEEDS', `the role ${role.name} carries ${excess.join(', ')}, which you do not hold`, { extensions: { permissions: excess } });
}

function expiresIn(now: Date, minutes: number | undefined): string | null {
  return minutes === undefined ? null : new Date(now.getTime() + minutes * 60_000).toISOString();
}

/** Roles, bindings, time-boxed grants, policy versions and `explain`. */
export function authzRoutes(authz: AuthzEngine, approvals: ApprovalService, clock: () => Date): FastifyPluginAsync {
  const { store } = authz;
  return async (plain) => {
    const app = plain.withTypeProvider<TypeBoxTypeProvider>();

    // ---------------------------------------------------------------------------------------------- roles
    app.get('/authz/roles', {
      schema: { tags, security, summary: 'The six built-in tiers and the custom roles, with their permissions', response: { 200: AuthzRoleList } },
      config: { permission: 'authz:roles:read' },
      handler: async (req) => ({ roles: await store.listRoles(req.tx) }),
    });
    app.get('/authz/roles/:name', {
      schema: { tags, security, summary: 'One role', params: RoleParams, response: { 200: AuthzRole } },
      config: { permission: 'authz:roles:read' },
      handler: async (req) => store.getRole(req.tx, req.params.name),
    });
    app.post('/authz/roles', {
      schema: { tags, security, summary: 'Create a custom role (only with permissions you hold)', body: CreateRoleRequest, response: { 201: AuthzRole } },
      config: { permission: 'authz:roles:create', audit: 'authz.role.create' },
      handler: async (req, reply) => {
        assertCanDelegate(req, req.body);
        const role = await store.createRole(req.tx, req.body, req.principal!.principal_id);
        req.auditRecord.resource = { type: 'authz_role', id: role.name };
        req.auditRecord.details = { permissions: role.permissions };
        void reply.code(201);
        return role;
      },
    });
    app.patch('/authz/roles/:name', {
      schema: { tags, security, summary: 'Change a custom role (every binding of it changes with it)', params: RoleParams, body: UpdateRoleRequest, response: { 200: AuthzRole } },
      config: { permission: 'authz:roles:update', audit: 'authz.role.update' },
      handler: async (req) => {
        if (req.body.permissions) assertCanDelegate(req, { name: req.params.name, permissions: req.body.permissions });
        const { before, after } = await store.updateRole(req.tx, req.params.name, req.body);
        req.auditRecord.resource = { type: 'authz_role', id: after.name };
        req.auditRecord.details = { permissions: after.permissions, previous_permissions: before.permissions };
        return after;
      },
    });
    app.delete('/authz/roles/:name', {
      schema: { tags, security, summary: 'Delete a custom role that is not bound', params: RoleParams },
      config: { permission: 'authz:roles:delete', audit: 'authz.role.delete' },
      handler: async (req, reply) => {
        const role = await store.deleteRole(req.tx, req.params.name);
        req.auditRecord.resource = { type: 'authz_role', id: role.name };
        req.auditRecord.details = { permissions: role.permissions };
        void reply.code(204);
        return null;
      },
    });

    // ------------------------------------------------------------------------------------------- bindings
    app.get('/authz/bindings', {
      schema: { tags, security, summary: 'Role bindings and time-boxed grants, newest first', querystring: ListBindingsQuery, response: { 200: AuthzBindingList } },
      config: { permission: 'authz:bindings:read' },
      handler: async (req) => ({ bindings: await store.listBindings(req.tx, req.query) }),
    });
    app.post('/authz/bindings', {
      schema: { tags, security, summary: 'Bind a role to a user, group or service identity in a scope; with expires_in_minutes, a just-in-time grant that ends by itself', body: CreateBindingRequest, response: { 201: AuthzBinding } },
      config: { permission: 'authz:bindings:create', audit: 'authz.binding.create' },
      handler: async (req, reply) => {
        assertCanDelegate(req, await store.getRole(req.tx, req.body.role));
        const expires_at = expiresIn(clock(), req.body.expires_in_minutes);
        const b = await store.createBinding(req.tx, { subject: req.body.subject, role: req.body.role, scope: req.body.scope ?? '*', expires_at, reason: req.body.reason ?? null }, req.principal!.principal_id);
        req.auditRecord.resource = { type: 'authz_binding', id: b.id };
        req.auditRecord.details = { subject: b.subject, role: b.role, scope: b.scope, expires_at: b.expires_at, reason: b.reason, approval_id: null };
        void reply.code(201);
        return b;
      },
    });
    app.delete('/authz/bindings/:id', {
      schema: { tags, security, summary: 'Remove a binding or end a grant now', params: IdParams },
      config: { permission: 'authz:bindings:delete', audit: 'authz.binding.delete' },
      handler: async (req, reply) => {
        const b = await store.deleteBinding(req.tx, req.params.id);
        req.auditRecord.resource = { type: 'authz_binding', id: b.id };
        req.auditRecord.details = { subject: b.subject, role: b.role, scope: b.scope };
        void reply.code(204);
        return null;
      },
    });

    // ---------------------------------------------------------------------------- requested grants (JIT)
    app.post('/authz/grants', {
      schema: {
        tags,
        security,
        summary: 'Ask for a role for a while (just-in-time access, or break-glass): a different principal holding authz:grants:approve approves it at /v1/approvals',
        body: GrantRequest,
        response: { 202: Approval },
      },
      config: { permission: 'authz:grants:request', audit: 'approval.request' },
      handler: async (req, reply) => {
        const role = await store.getRole(req.tx, req.body.role);
        const approval = await approvals.request(req.tx, {
          action: GRANT_ACTION,
          // Whoever approves must be able to hand the role out themselves.
          permission: role.permissions.includes('*') ? '*' : 'authz:grants:approve',
          resource: { type: 'authz_role', id: role.name },
          requested_by: req.principal!.principal_id,
          reason: req.body.break_glass ? `BREAK-GLASS: ${req.body.reason}` : req.body.reason,
          details: { subject: req.principal!.principal_id, role: role.name, scope: req.body.scope ?? '*', minutes: req.body.minutes, reason: req.body.reason, break_glass: req.body.break_glass === true },
          ...(req.body.break_glass ? { ttl_minutes: 60 } : { ttl_days: 1 }),
        });
        req.auditRecord.resource = { type: 'approval', id: approval.id };
        req.auditRecord.details = { action: approval.action, target: approval.resource };
        void reply.code(202);
        return approval;
      },
    });

    // ------------------------------------------------------------------------------------------- policies
    app.get('/authz/policy', {
      schema: { tags, security, summary: 'The active policy document and its version', response: { 200: PolicyVersion } },
      config: { permission: 'authz:policies:read' },
      handler: async (req) => store.currentPolicy(req.tx),
    });
    app.put('/authz/policy', {
      schema: { tags, security, summary: 'Store a new policy version (YAML or JSON); refused with line-numbered errors when invalid', body: PolicySource, response: { 200: PolicyVersion } },
      config: { permission: 'authz:policies:write', audit: 'authz.policy.update' },
      handler: async (req) => {
        const { previous, current } = await store.putPolicy(req.tx, req.body.source, req.body.comment ?? null, req.principal!.principal_id);
        req.auditRecord.resource = { type: 'authz_policy', id: String(current.version) };
        req.auditRecord.details = { version: current.version, sha256: current.sha256, rules: current.rules, previous_version: previous.version, previous_sha256: previous.sha256, comment: current.comment };
        return current;
      },
    });
    app.post('/authz/policy/validate', {
      schema: { tags, security, summary: 'Check a policy document without storing it', body: PolicySource, response: { 200: PolicyValidation } },
      config: { permission: 'authz:policies:read', audit: 'authz.policy.validate' },
      handler: async (req) => {
        let result: { valid: boolean; rules: number; errors: PolicyProblem[] };
        try {
          result = { valid: true, rules: parsePolicy(req.body.source).document.rules.length, errors: [] };
        } catch (e) {
          if (!(e instanceof PalisadeError && e.code === 'PAL_AUTHZ_POLICY_INVALID')) throw e;
          result = { valid: false, rules: 0, errors: e.extensions['errors'] as PolicyProblem[] };
        }
        req.auditRecord.details = { sha256: sha256(Buffer.from(req.body.source, 'utf8')).toString('hex'), valid: result.valid, rules: result.rules };
        return result;
      },
    });
    app.get('/authz/policy/versions', {
      schema: { tags, security, summary: 'Every stored policy version, newest first', response: { 200: PolicyVersionList } },
      config: { permission: 'authz:policies:read' },
      handler: async (req) => ({ versions: await store.policyVersions(req.tx) }),
    });
    app.get('/authz/policy/versions/:version', {
      schema: { tags, security, summary: 'One policy version with its source', params: VersionParams, response: { 200: PolicyVersion } },
      config: { permission: 'authz:policies:read' },
      handler: async (req) => store.policyVersion(req.tx, req.params.version),
    });

    // -------------------------------------------------------------------------------------------- explain
    app.post('/authz/explain', {
      schema: { tags, security, summary: 'The decision for a principal, action, resource and context, with every role, binding and rule that took part', body: ExplainRequest, response: { 200: Explanation } },
      config: { permission: 'authz:decisions:explain', audit: 'authz.explain' },
      handler: async (req) => {
        const self = req.principal!;
        const other = req.body.principal_id !== undefined && req.body.principal_id !== self.principal_id;
        if (other) {
          const may = await authz.authorize({ principal: self, source_ip: req.ip }, 'authz:decisions:explain-any', { type: 'route', id: req.routeOptions.url ?? null }, req.tx);
          if (may.decision !== 'allow') throw new PalisadeError('PAL_FORBIDDEN', `explaining another principal's decisions requires authz:decisions:explain-any: ${may.reason}`, { extensions: { permission: 'authz:decisions:explain-any' } });
        }
        const resource = req.body.resource ?? { type: 'route' };
        const facts = other ? { principal_id: req.body.principal_id! } : { principal: self, source_ip: req.ip };
        const explanation = await authz.explain(facts, req.body.action, resource, req.body.context ?? {}, req.tx);
        req.auditRecord.details = { principal_id: explanation.principal_id, action: explanation.action, decision: explanation.decision };
        return explanation;
      },
    });
  };
}

import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { PalisadeError } from '@palisade/core';
import type { ApiKeyService } from '../../kernel/auth/api-keys.js';
import { canDelegate } from '../../kernel/auth/permissions.js';
import { permissionsOf } from '../../kernel/auth/roles.js';
import type { IdentityEngine } from './engine.js';

const tags = ['identity'];
const security = [{ bearer: [] }];
const Id = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) });
const Roles = Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { maxItems: 32 });
const Name = Type.String({ minLength: 1, maxLength: 128, pattern: '^[^\\x00-\\x1f]+$' });
// Null first: with coerceTypes, a string branch tried first would turn null into "" and never clear the field.
const OptStr = (max: number) => Type.Optional(Type.Union([Type.Null(), Type.String({ maxLength: max })]));
const HOUR_MS = 3_600_000;

/** Administration of users, service identities and the roles of groups (groups themselves come from SCIM). */
export function identityAdminRoutes(identity: IdentityEngine, apiKeys: ApiKeyService, clock: () => Date): FastifyPluginAsync {
  return async (plain) => {
    const app = plain.withTypeProvider<TypeBoxTypeProvider>();
    const { directory } = identity;

    // Routes on one user, group or service identity are decided in its organisation (bindings scoped to org:<id>).
    const tables = { users: ['users', 'user'], groups: ['groups', 'group'], services: ['service_identities', 'service'] } as const;
    app.addHook('onRoute', (route) => {
      const m = /^\/v1\/(users|groups|services)\/:id(\/|$)/.exec(route.url);
      if (!m || !route.config) return;
      const [table, type] = tables[m[1] as keyof typeof tables];
      route.config.resource ??= async (req) => {
        const id = (req.params as { id: string }).id;
        const row = await req.tx.selectFrom(table).select('org_id').where('id', '=', id).executeTakeFirst();
        return row ? { type, id, org: row.org_id } : null;
      };
    });

    // -------------------------------------------------------------------------------------- organisations
    app.post('/orgs', {
      schema: { tags, security, summary: 'Create an organisation', body: Type.Object({ name: Type.String({ pattern: '^[a-z0-9][a-z0-9-]{0,62}$' }), display_name: OptStr(128) }, { additionalProperties: false }) },
      config: { permission: 'identity:orgs:create', audit: 'identity.org.create' },
      handler: async (req, reply) => {
        const org = await directory.createOrganization(req.tx, req.body);
        req.auditRecord.resource = { type: 'organization', id: org.id };
        req.auditRecord.details = { name: org.name };
        void reply.code(201);
        return org;
      },
    });
    app.get('/orgs', { schema: { tags, security, summary: 'List organisations' }, config: { permission: 'identity:orgs:read' }, handler: async (req) => ({ organizations: await directory.listOrganizations(req.tx) }) });
    app.get('/orgs/:id', { schema: { tags, security, summary: 'An organisation', params: Id }, config: { permission: 'identity:orgs:read' }, handler: async (req) => directory.getOrganization(req.tx, req.params.id) });

    // ---------------------------------------------------------------------------------------------- users
    app.post('/users', {
      schema: {
        tags,
        security,
        summary: 'Create a user',
        body: Type.Object(
          {
            username: Name,
            password: Type.Optional(Type.String({ minLength: 1, maxLength: 1024 })),
            email: OptStr(254),
            display_name: OptStr(128),
            roles: Type.Optional(Roles),
            mfa_required: Type.Optional(Type.Boolean()),
            org_id: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
          },
          { additionalProperties: false },
        ),
      },
      config: { permission: 'identity:users:create', audit: 'identity.user.create' },
      handler: async (req, reply) => {
        const roles = req.body.roles ?? ['viewer'];
        assertCanGrantRoles(req.principal!.permissions, roles);
        const user = await directory.createUser(req.tx, { ...req.body, roles, mfa_required: req.body.mfa_required ?? identity.deps.config.mfa_required });
        req.auditRecord.resource = { type: 'user', id: user.id };
        req.auditRecord.subject = user.id;
        req.auditRecord.details = { username: user.username, ...(user.email ? { email: user.email } : {}), ...(user.display_name ? { display_name: user.display_name } : {}), roles: user.roles, source: 'local' };
        void reply.code(201);
        return user;
      },
    });
    app.get('/users', {
      schema: { tags, security, summary: 'List users', querystring: Type.Object({ offset: Type.Optional(Type.Integer({ minimum: 0 })), limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })), username: Type.Optional(Type.String({ maxLength: 128 })), org_id: Type.Optional(Type.String({ maxLength: 64 })) }) },
      config: { permission: 'identity:users:read' },
      handler: async (req) => directory.listUsers(req.tx, req.query),
    });
    app.get('/users/:id', { schema: { tags, security, summary: 'A user', params: Id }, config: { permission: 'identity:users:read' }, handler: async (req) => directory.getUser(req.tx, req.params.id) });
    app.patch('/users/:id', {
      schema: {
        tags,
        security,
        summary: 'Change a user (active: false deprovisions: sessions, tokens and API keys end)',
        params: Id,
        body: Type.Object({ email: OptStr(254), display_name: OptStr(128), roles: Type.Optional(Roles), active: Type.Optional(Type.Boolean()), mfa_required: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
      },
      config: { permission: 'identity:users:update', audit: 'identity.user.update' },
      handler: async (req) => {
        if (req.body.roles) assertCanGrantRoles(req.principal!.permissions, req.body.roles);
        const { user, changed } = await directory.updateUser(req.tx, req.params.id, req.body);
        if (changed.includes('active') && !user.active) req.auditRecord.afterCommit.push(async () => void (await identity.sessions.deleteForUser(user.id)));
        identity.principals.forget(user.id);
        req.auditRecord.resource = { type: 'user', id: user.id };
        req.auditRecord.details = { changed, source: 'api' };
        return user;
      },
    });
    app.delete('/users/:id', {
      schema: { tags, security, summary: 'Delete a user with their factors, sessions, tokens and API keys', params: Id },
      config: { permission: 'identity:users:delete', audit: 'identity.user.delete' },
      handler: async (req, reply) => {
        const user = await directory.deleteUser(req.tx, req.params.id);
        req.auditRecord.afterCommit.push(async () => void (await identity.sessions.deleteForUser(user.id)));
        identity.principals.forget(user.id);
        req.auditRecord.resource = { type: 'user', id: user.id };
        req.auditRecord.subject = user.id;
        req.auditRecord.details = { username: user.username, erase_subject: false };
        void reply.code(204);
        return null;
      },
    });
    app.post('/users/:id/password', {
      schema: { tags, security, summary: 'Set a user\'s password (their sessions and tokens end)', params: Id, body: Type.Object({ password: Type.String({ minLength: 1, maxLength: 1024 }) }, { additionalProperties: false }) },
      config: { permission: 'identity:users:update', audit: 'auth.password.change' },
      handler: async (req, reply) => {
        await directory.setPassword(req.tx, req.params.id, req.body.password);
        req.auditRecord.afterCommit.push(async () => void (await identity.sessions.deleteForUser(req.params.id)));
        identity.principals.forget(req.params.id);
        req.auditRecord.resource = { type: 'user', id: req.params.id };
        req.auditRecord.details = { reset: true };
        void reply.code(204);
        return null;
      },
    });
    app.post('/users/:id/sessions/revoke', {
      schema: { tags, security, summary: 'End every session of a user', params: Id },
      config: { permission: 'identity:users:update', audit: 'session.revoke' },
      handler: async (req) => {
        await directory.getUser(req.tx, req.params.id);
        const sessions = await identity.sessions.deleteForUser(req.params.id, req.tx);
        req.auditRecord.resource = { type: 'user', id: req.params.id };
        req.auditRecord.details = { sessions, reason: 'admin' };
        return { sessions };
      },
    });
    app.post('/groups', {
      schema: {
        tags,
        security,
        summary: 'Create a group (IdPs create theirs through SCIM); its roles go to its members',
        body: Type.Object({ display_name: Type.String({ minLength: 1, maxLength: 256 }), roles: Type.Optional(Roles), members: Type.Optional(Type.Array(Type.String({ maxLength: 64 }), { maxItems: 1000 })) }, { additionalProperties: false }),
      },
      config: { permission: 'identity:groups:create', audit: 'identity.group.create' },
      handler: async (req, reply) => {
        assertCanGrantRoles(req.principal!.permissions, req.body.roles ?? []);
        const group = await directory.createGroup(req.tx, req.body);
        for (const m of group.members) identity.principals.forget(m);
        req.auditRecord.resource = { type: 'group', id: group.id };
        req.auditRecord.details = { display_name: group.display_name, roles: group.roles, members: group.members.length };
        void reply.code(201);
        return group;
      },
    });
    app.get('/groups', {
      schema: { tags, security, summary: 'List groups', querystring: Type.Object({ offset: Type.Optional(Type.Integer({ minimum: 0 })), limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })) }) },
      config: { permission: 'identity:groups:read' },
      handler: async (req) => directory.listGroups(req.tx, req.query),
    });
    app.put('/groups/:id/roles', {
      schema: { tags, security, summary: 'Roles the members of a group get', params: Id, body: Type.Object({ roles: Roles }, { additionalProperties: false }) },
      config: { permission: 'identity:groups:update', audit: 'identity.group.update' },
      handler: async (req) => {
        assertCanGrantRoles(req.principal!.permissions, req.body.roles);
        const { group, changed } = await directory.updateGroup(req.tx, req.params.id, { roles: req.body.roles });
        for (const m of group.members) identity.principals.forget(m);
        req.auditRecord.resource = { type: 'group', id: group.id };
        req.auditRecord.details = { changed };
        return group;
      },
    });

    // --------------------------------------------------------------------------------- service identities
    app.post('/services', {
      schema: {
        tags,
        security,
        summary: 'Create a service identity (an agent or service)',
        body: Type.Object(
          {
            name: Type.String({ pattern: '^[a-z0-9][a-z0-9._-]{0,62}$' }),
            description: OptStr(512),
            roles: Type.Optional(Roles),
            spiffe_id: Type.Optional(Type.String({ pattern: '^spiffe://[^/]+/.+', maxLength: 2048 })),
            org_id: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
          },
          { additionalProperties: false },
        ),
      },
      config: { permission: 'identity:services:create', audit: 'identity.service.create' },
      handler: async (req, reply) => {
        const roles = req.body.roles ?? ['agent'];
        assertCanGrantRoles(req.principal!.permissions, roles);
        const service = await directory.createService(req.tx, { ...req.body, roles });
        req.auditRecord.resource = { type: 'service', id: service.id };
        req.auditRecord.details = { name: service.name, roles: service.roles, spiffe_id: service.spiffe_id };
        void reply.code(201);
        return service;
      },
    });
    app.get('/services', { schema: { tags, security, summary: 'List service identities' }, config: { permission: 'identity:services:read' }, handler: async (req) => ({ services: await directory.listServices(req.tx) }) });
    app.get('/services/:id', { schema: { tags, security, summary: 'A service identity', params: Id }, config: { permission: 'identity:services:read' }, handler: async (req) => directory.getService(req.tx, req.params.id) });
    app.patch('/services/:id', {
      schema: { tags, security, summary: 'Change a service identity (active: false ends its tokens and API keys)', params: Id, body: Type.Object({ description: OptStr(512), roles: Type.Optional(Roles), active: Type.Optional(Type.Boolean()) }, { additionalProperties: false }) },
      config: { permission: 'identity:services:update', audit: 'identity.service.update' },
      handler: async (req) => {
        if (req.body.roles) assertCanGrantRoles(req.principal!.permissions, req.body.roles);
        const { service, changed } = await directory.updateService(req.tx, req.params.id, req.body);
        identity.principals.forget(service.id);
        req.auditRecord.resource = { type: 'service', id: service.id };
        req.auditRecord.details = { changed };
        return service;
      },
    });
    app.delete('/services/:id', {
      schema: { tags, security, summary: 'Delete a service identity with its tokens and API keys', params: Id },
      config: { permission: 'identity:services:delete', audit: 'identity.service.delete' },
      handler: async (req, reply) => {
        const service = await directory.deleteService(req.tx, req.params.id);
        identity.principals.forget(service.id);
        req.auditRecord.resource = { type: 'service', id: service.id };
        req.auditRecord.details = { name: service.name };
        void reply.code(204);
        return null;
      },
    });
    app.get('/services/:id/api-keys', {
      schema: { tags, security, summary: 'The API keys of a service identity (never their tokens)', params: Id },
      config: { permission: 'identity:services:read' },
      handler: async (req) => {
        await directory.serviceRow(req.tx, req.params.id);
        return { api_keys: (await apiKeys.list(req.tx)).filter((k) => k.principal_id === req.params.id) };
      },
    });
    app.delete('/services/:id/api-keys/:key_id', {
      schema: { tags, security, summary: 'Revoke an API key of a service identity', params: Type.Object({ id: Type.String({ maxLength: 64 }), key_id: Type.String({ maxLength: 64 }) }) },
      config: { permission: 'identity:services:update', audit: 'auth.api_key.revoke' },
      handler: async (req) => {
        const key = (await apiKeys.list(req.tx)).find((k) => k.id === req.params.key_id && k.principal_id === req.params.id);
        if (!key) throw new PalisadeError('PAL_AUTH_API_KEY_NOT_FOUND');
        req.auditRecord.resource = { type: 'api_key', id: key.id };
        return apiKeys.revoke(req.tx, key.id);
      },
    });
    app.post('/services/:id/api-keys', {
      schema: {
        tags,
        security,
        summary: 'An API key for a service identity (also its OAuth client secret); token shown once',
        params: Id,
        body: Type.Object(
          {
            name: Type.String({ minLength: 1, maxLength: 128 }),
            permissions: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 128 }), { maxItems: 64 })),
            expires_in_days: Type.Optional(Type.Integer({ minimum: 1, maximum: 3650 })),
            replaces: Type.Optional(Type.String({ maxLength: 64, description: 'rotation: the key this one replaces; it keeps working for overlap_hours' })),
            overlap_hours: Type.Optional(Type.Integer({ minimum: 0, maximum: 720, default: 24 })),
          },
          { additionalProperties: false },
        ),
      },
      config: { permission: 'identity:services:update', audit: 'auth.api_key.create' },
      handler: async (req, reply) => {
        const service = await directory.serviceRow(req.tx, req.params.id);
        const held = (await identity.principals.get(service.id, req.tx))?.permissions ?? [];
        const permissions = req.body.permissions ?? held;
        const excess = permissions.filter((p) => !canDelegate(held, p) || !canDelegate(req.principal!.permissions, p));
        if (excess.length > 0) throw new PalisadeError('PAL_AUTH_GRANT_EXCEEDS', `neither you nor the service may grant ${excess.join(', ')}`, { extensions: { permissions: excess } });
        const now = clock().getTime();
        const expires_at = req.body.expires_in_days ? new Date(now + req.body.expires_in_days * 24 * HOUR_MS).toISOString() : null;
        if (req.body.replaces) {
          const old = (await apiKeys.list(req.tx)).find((k) => k.id === req.body.replaces && k.principal_id === service.id);
          if (!old) throw new PalisadeError('PAL_AUTH_API_KEY_NOT_FOUND');
          const overlapEnd = new Date(now + (req.body.overlap_hours ?? 24) * HOUR_MS).toISOString();
          if (!old.expires_at || old.expires_at > overlapEnd) await req.tx.updateTable('api_keys').set({ expires_at: overlapEnd }).where('id', '=', old.id).execute();
        }
        const created = await apiKeys.create(req.tx, { name: req.body.name, principal_id: service.id, permissions, expires_at, created_by: req.principal!.principal_id });
        req.auditRecord.resource = { type: 'api_key', id: created.id };
        req.auditRecord.details = { name: created.name, permissions, expires_at, principal_id: service.id };
        void reply.code(201);
        return created;
      },
    });
  };
}

/** Least privilege: nobody grants a role whose permissions they do not hold themselves. */
function assertCanGrantRoles(held: readonly string[], roles: readonly string[]): void {
  // Unknown roles are reported by the directory with the list of known ones.
  const excess = roles.filter((r) => permissionsOf([r]).some((p) => !canDelegate(held, p)));
  if (excess.length > 0) throw new PalisadeError('PAL_AUTH_GRANT_EXCEEDS', `you cannot grant the role ${excess.join(', ')}: it carries permissions you do not hold`, { extensions: { roles: excess } });
}

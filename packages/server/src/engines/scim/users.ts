/**
 * /Users: what Okta and Azure AD call to provision (POST after a `userName eq` lookup), update (PUT from Okta,
 * PATCH from both), deprovision (`active: false`, which ends the user's sessions, tokens and API keys in the
 * same transaction as its audit event) and delete. Users created here have `source: 'scim'`, no roles of their
 * own and no password: they sign in through the federated IdP and get roles from groups.
 */
import { PalisadeError } from '@palisade/core';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Directory, User, UserPatch } from '../identity/directory.js';
import { checkIfMatch, noContent, setEtag } from './conditional.js';
import { list, listResponse, param, readListQuery } from './list.js';
import { groupsOfUsers, lockRow } from './membership.js';
import { applyPatch, readPatch } from './patch.js';
import { parseProjection, project } from './projection.js';
import { readBody, userFields, userResource, type Resource, type UserFields } from './resources.js';
import { USER } from './schema.js';
import type { Executor } from '../../storage/database.js';

const tags = ['scim'];
const id = (req: FastifyRequest): string => (req.params as { id: string }).id;

/** Directory fields from a representation: every attribute is asserted (null clears it), `active` only when given. */
function patchOf(f: UserFields): UserPatch {
  return {
    username: f.username,
    external_id: f.external_id,
    display_name: f.display_name,
    given_name: f.given_name,
    family_name: f.family_name,
    email: f.email,
    ...(f.active !== undefined ? { active: f.active } : {}),
  };
}

export function userRoutes(app: FastifyInstance, directory: Directory, baseOf: (req: FastifyRequest) => string): void {
  const represent = async (db: Executor, users: User[], base: string): Promise<Resource[]> => {
    const groups = await groupsOfUsers(
      db,
      users.map((u) => u.id),
    );
    return users.map((u) => userResource(u, groups.get(u.id) ?? [], base));
  };
  const one = async (req: FastifyRequest, reply: FastifyReply, user: User): Promise<Resource> => {
    const [r] = await represent(req.tx, [user], baseOf(req));
    setEtag(reply, user.version);
    return project(r!, parseProjection(USER, param(req.query, 'attributes'), param(req.query, 'excludedAttributes')));
  };
  /** Apply the new representation; the audit event names the attributes that changed. */
  const update = async (req: FastifyRequest, reply: FastifyReply, fields: UserFields): Promise<Resource> => {
    const { user, changed } = await directory.updateUser(req.tx, id(req), patchOf(fields));
    req.auditRecord.details = { changed, source: 'scim' };
    return one(req, reply, user);
  };
  /** Lock, read and check `If-Match` before a write. */
  const current = async (req: FastifyRequest): Promise<User> => {
    req.auditRecord.resource = { type: 'user', id: id(req) };
    await lockRow(req.tx, 'users', id(req));
    const user = await directory.getUser(req.tx, id(req));
    // An IdP manages the accounts it (or a federated sign-in) provisioned; local accounts, the owner's among them,
    // are changed only through /v1/users, so a compromised SCIM credential cannot disable or delete them.
    if (user.source === 'local') throw new PalisadeError('PAL_FORBIDDEN', 'this is a local account: change it through /v1/users, not SCIM');
    checkIfMatch(req, user.version);
    return user;
  };

  app.get('/Users', { schema: { tags, summary: 'List or filter users' }, config: { permission: 'scim:users:read' } }, async (req) => {
    const q = readListQuery(USER, req.query, ['id', 'userName', 'externalId']);
    const base = baseOf(req);
    const result = await list(q, {
      page: async (offset, limit) => {
        const { total, users } = await directory.listUsers(req.tx, { offset, limit });
        return { total, items: users };
      },
      lookup: async (attr, value) => {
        if (attr === 'id') return directory.getUser(req.tx, value).then((u) => [u], () => []);
        return (await directory.listUsers(req.tx, attr === 'userName' ? { username: value } : { external_id: value })).users;
      },
      represent: (users) => represent(req.tx, users, base),
    });
    return listResponse(q, result);
  });

  app.post('/Users', { schema: { tags, summary: 'Provision a user' }, config: { permission: 'scim:users:write', audit: 'identity.user.create' } }, async (req, reply) => {
    const f = userFields(readBody(USER, req.body));
    req.auditRecord.details = {
      username: f.username,
      ...(f.email !== null ? { email: f.email } : {}),
      ...(f.display_name !== null ? { display_name: f.display_name } : {}),
      roles: [],
      source: 'scim',
    };
    const user = await directory.createUser(req.tx, { ...patchOf(f), username: f.username, active: f.active ?? true, roles: [], source: 'scim' });
    req.auditRecord.resource = { type: 'user', id: user.id };
    req.auditRecord.subject = user.id;
    const body = await one(req, reply, user);
    void reply.code(201).header('location', `${baseOf(req)}/Users/${user.id}`);
    return body;
  });

  app.get('/Users/:id', { schema: { tags, summary: 'Read a user' }, config: { permission: 'scim:users:read' } }, async (req, reply) => one(req, reply, await directory.getUser(req.tx, id(req))));

  app.put('/Users/:id', { schema: { tags, summary: 'Replace a user' }, config: { permission: 'scim:users:write', audit: 'identity.user.update' } }, async (req, reply) => {
    await current(req);
    return update(req, reply, userFields(readBody(USER, req.body)));
  });

  app.patch('/Users/:id', { schema: { tags, summary: 'Change a user (PatchOp)' }, config: { permission: 'scim:users:write', audit: 'identity.user.update' } }, async (req, reply) => {
    const ops = readPatch(req.body);
    const user = await current(req);
    const [before] = await represent(req.tx, [user], baseOf(req));
    return update(req, reply, userFields(applyPatch(USER, before!, ops)));
  });

  app.delete('/Users/:id', { schema: { tags, summary: 'Delete a user' }, config: { permission: 'scim:users:write', audit: 'identity.user.delete' } }, async (req, reply) => {
    await current(req);
    const user = await directory.deleteUser(req.tx, id(req));
    req.auditRecord.subject = user.id;
    req.auditRecord.details = { username: user.username, erase_subject: false };
    return noContent(reply);
  });
}

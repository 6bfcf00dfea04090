/**
 * /Groups: the IdP's groups and their members. Groups created here carry no roles; an administrator gives a group
 * roles through the identity API, and the IdP then grants them by membership (so a SCIM credential cannot mint
 * roles). Membership PATCHes become add/remove lists, applied under the group's row lock.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isPalisadeError } from '@palisade/core';
import type { Directory, Group } from '../identity/directory.js';
import type { Executor } from '../../storage/database.js';
import { checkIfMatch, noContent, setEtag } from './conditional.js';
import { scimError } from './errors.js';
import { list, listResponse, param, readListQuery } from './list.js';
import { lockRow, userLabels } from './membership.js';
import { applyPatch, readPatch } from './patch.js';
import { parseProjection, project, wants } from './projection.js';
import { groupFields, groupResource, readBody, type Resource } from './resources.js';
import { GROUP } from './schema.js';

const tags = ['scim'];
const id = (req: FastifyRequest): string => (req.params as { id: string }).id;

/** A member that is no user is the request's fault (400 invalidValue), not a missing resource (404). */
async function members<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (isPalisadeError(e) && e.code === 'PAL_IDENTITY_USER_NOT_FOUND') throw scimError('invalidValue', `members: ${e.message}`);
    throw e;
  }
}

export function groupRoutes(app: FastifyInstance, directory: Directory, baseOf: (req: FastifyRequest) => string): void {
  /** Members' display names cost a read per page of members: only when the answer (or a filter) shows them. */
  const represent = async (db: Executor, groups: Group[], base: string, labelled: boolean): Promise<Resource[]> => {
    const labels = labelled ? await userLabels(db, groups.flatMap((g) => g.members)) : null;
    return groups.map((g) => groupResource(g, labels, base));
  };
  const projectionOf = (req: FastifyRequest) => parseProjection(GROUP, param(req.query, 'attributes'), param(req.query, 'excludedAttributes'));
  const one = async (req: FastifyRequest, reply: FastifyReply, group: Group): Promise<Resource> => {
    const p = projectionOf(req);
    const [r] = await represent(req.tx, [group], baseOf(req), wants(p, 'members'));
    setEtag(reply, group.version);
    return project(r!, p);
  };
  const current = async (req: FastifyRequest): Promise<Group> => {
    req.auditRecord.resource = { type: 'group', id: id(req) };
    await lockRow(req.tx, 'groups', id(req));
    const group = await directory.getGroup(req.tx, id(req));
    checkIfMatch(req, group.version);
    return group;
  };

  app.get('/Groups', { schema: { tags, summary: 'List or filter groups' }, config: { permission: 'scim:groups:read' } }, async (req) => {
    const q = readListQuery(GROUP, req.query, ['id', 'displayName', 'externalId']);
    const base = baseOf(req);
    const labelled = wants(q.projection, 'members') || q.predicate !== null;
    const result = await list(q, {
      page: async (offset, limit) => {
        const { total, groups } = await directory.listGroups(req.tx, { offset, limit });
        return { total, items: groups };
      },
      lookup: async (attr, value) => {
        if (attr === 'id') return directory.getGroup(req.tx, value).then((g) => [g], () => []);
        return (await directory.listGroups(req.tx, attr === 'displayName' ? { display_name: value } : { external_id: value })).groups;
      },
      represent: (groups) => represent(req.tx, groups, base, labelled),
    });
    return listResponse(q, result);
  });

  app.post('/Groups', { schema: { tags, summary: 'Provision a group' }, config: { permission: 'scim:groups:write', audit: 'identity.group.create' } }, async (req, reply) => {
    const f = groupFields(readBody(GROUP, req.body));
    req.auditRecord.details = { display_name: f.display_name, roles: [], members: f.members.length };
    const group = await members(() => directory.createGroup(req.tx, { display_name: f.display_name, external_id: f.external_id, roles: [], members: f.members }));
    req.auditRecord.resource = { type: 'group', id: group.id };
    const body = await one(req, reply, group);
    void reply.code(201).header('location', `${baseOf(req)}/Groups/${group.id}`);
    return body;
  });

  app.get('/Groups/:id', { schema: { tags, summary: 'Read a group' }, config: { permission: 'scim:groups:read' } }, async (req, reply) => one(req, reply, await directory.getGroup(req.tx, id(req))));

  app.put('/Groups/:id', { schema: { tags, summary: 'Replace a group' }, config: { permission: 'scim:groups:write', audit: 'identity.group.update' } }, async (req, reply) => {
    await current(req);
    const f = groupFields(readBody(GROUP, req.body));
    const { group, changed } = await members(() => directory.updateGroup(req.tx, id(req), { display_name: f.display_name, external_id: f.external_id, members: f.members }));
    req.auditRecord.details = { changed };
    return one(req, reply, group);
  });

  app.patch('/Groups/:id', { schema: { tags, summary: 'Change a group or its members (PatchOp)' }, config: { permission: 'scim:groups:write', audit: 'identity.group.update' } }, async (req, reply) => {
    const ops = readPatch(req.body);
    const before = await current(req);
    const labelled = ops.some((o) => o.path !== null && /display/i.test(o.path.replace(/^displayName/i, '')));
    const [doc] = await represent(req.tx, [before], baseOf(req), labelled);
    const f = groupFields(applyPatch(GROUP, doc!, ops));
    const had = new Set(before.members);
    const now = new Set(f.members);
    const { group, changed } = await members(() =>
      directory.updateGroup(req.tx, id(req), {
        display_name: f.display_name,
        external_id: f.external_id,
        add: f.members.filter((m) => !had.has(m)),
        remove: before.members.filter((m) => !now.has(m)),
      }),
    );
    req.auditRecord.details = { changed };
    // RFC 7644 §3.5.2: 204 unless the client asked for attributes (a large group's member list is not echoed).
    if (param(req.query, 'attributes') === undefined && param(req.query, 'excludedAttributes') === undefined) {
      setEtag(reply, group.version);
      return noContent(reply);
    }
    return one(req, reply, group);
  });

  app.delete('/Groups/:id', { schema: { tags, summary: 'Delete a group' }, config: { permission: 'scim:groups:write', audit: 'identity.group.delete' } }, async (req, reply) => {
    await current(req);
    const group = await directory.deleteGroup(req.tx, id(req));
    req.auditRecord.details = { display_name: group.display_name };
    return noContent(reply);
  });
}

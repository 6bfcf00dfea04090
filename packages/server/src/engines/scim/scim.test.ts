/**
 * SCIM 2.0 over HTTPS against a real server on SQLite and PostgreSQL, driven with the requests Okta and Azure AD
 * send (bodies after their published SCIM integration guides and the Azure AD SCIM validator's traffic).
 */
import { request } from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiKeyService } from '../../kernel/auth/api-keys.js';
import { dialects, OWNER_TOKEN, startServer, type TestServer } from '../../testing/harness.js';

const USER = 'urn:ietf:params:scim:schemas:core:2.0:User';
const GROUP = 'urn:ietf:params:scim:schemas:core:2.0:Group';
const ENTERPRISE = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';
const PATCH_OP = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
const LIST = 'urn:ietf:params:scim:api:messages:2.0:ListResponse';
const ERROR = 'urn:ietf:params:scim:api:messages:2.0:Error';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  json: Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const q = (filter: string, more = '') => `?filter=${encodeURIComponent(filter)}${more}`;

describe.each(dialects())('SCIM 2.0 ($name)', ({ name, available }) => {
  let s: TestServer;
  let scimToken = '';

  /** A SCIM request as an IdP makes it: bearer token, application/scim+json both ways. */
  const scim = (method: string, path: string, body?: unknown, opts: { token?: string | null; headers?: Record<string, string> } = {}): Promise<Answer> =>
    new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
      const [host, port] = s.addr.split(':');
      const token = opts.token === undefined ? scimToken : opts.token;
      const req = request(
        {
          host,
          port: Number(port),
          method,
          path: `/scim/v2${path}`,
          ca: s.ca,
          agent: false,
          headers: {
            accept: 'application/scim+json',
            ...(token ? { authorization: `Bearer ${token}` } : {}),
            ...(payload ? { 'content-type': 'application/scim+json; charset=utf-8', 'content-length': String(payload.length) } : {}),
            ...opts.headers,
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            resolve({ status: res.statusCode ?? 0, headers: res.headers, json: text ? JSON.parse(text) : {} });
          });
        },
      );
      req.on('error', reject);
      req.end(payload);
    });

  const audit = async (type: string, resource: string) => (await s.client.audit.query({ type, resource })).events;
  const userRow = (id: string) => s.rt.storage.db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();

  beforeAll(async () => {
    if (!available) return;
    s = await startServer(name);
    scimToken = (await s.client.createApiKey({ name: 'okta-provisioning', permissions: ['scim:*'] })).token;
  });
  afterAll(async () => s?.close());

  describe.skipIf(!available)('', () => {
    it('discovery: ServiceProviderConfig, ResourceTypes and Schemas, in application/scim+json', async () => {
      const spc = await scim('GET', '/ServiceProviderConfig', undefined, { token: null });
      expect(spc.status).toBe(200);
      expect(spc.headers['content-type']).toMatch(/^application\/scim\+json/);
      expect(spc.json).toMatchObject({ patch: { supported: true }, filter: { supported: true, maxResults: 200 }, bulk: { supported: false }, etag: { supported: true } });
      const types = await scim('GET', '/ResourceTypes');
      expect(types.json).toMatchObject({ schemas: [LIST], totalResults: 2 });
      expect(types.json.Resources.map((r: { endpoint: string }) => r.endpoint)).toEqual(['/Users', '/Groups']);
      const schemas = await scim('GET', '/Schemas');
      const user = schemas.json.Resources.find((r: { id: string }) => r.id === USER);
      expect(user.attributes.find((a: { name: string }) => a.name === 'userName')).toMatchObject({ required: true, caseExact: false, uniqueness: 'server' });
      expect((await scim('GET', `/Schemas/${GROUP}`)).json.name).toBe('Group');
    });

    it('Okta: look up by userName, create, read, conflict, replace (PUT) and deactivate (PATCH)', async () => {
      const lookup = await scim('GET', `/Users${q('userName eq "isaac.brock@example.com"', '&startIndex=1&count=100')}`);
      expect(lookup.json).toEqual({ schemas: [LIST], totalResults: 0, startIndex: 1, itemsPerPage: 0, Resources: [] });

      const okta = {
        schemas: [USER],
        userName: 'isaac.brock@example.com',
        name: { givenName: 'Isaac', familyName: 'Brock' },
        emails: [{ primary: true, value: 'isaac.brock@example.com', type: 'work' }],
        displayName: 'Isaac Brock',
        locale: 'en-US',
        externalId: '00ujl29u0le5T6Aj10h7',
        groups: [],
        password: '1mz050nq',
        active: true,
      };
      const created = await scim('POST', '/Users', okta);
      expect(created.status).toBe(201);
      expect(created.headers['content-type']).toMatch(/^application\/scim\+json/);
      const id = created.json.id as string;
      expect(created.headers.location).toBe(`https://${s.addr}/scim/v2/Users/${id}`);
      expect(created.headers.etag).toBe('W/"1"');
      expect(created.json).toMatchObject({
        schemas: [USER],
        userName: 'isaac.brock@example.com',
        externalId: '00ujl29u0le5T6Aj10h7',
        name: { givenName: 'Isaac', familyName: 'Brock', formatted: 'Isaac Brock' },
        emails: [{ value: 'isaac.brock@example.com', primary: true }],
        active: true,
        groups: [],
        meta: { resourceType: 'User', location: `https://${s.addr}/scim/v2/Users/${id}`, version: 'W/"1"' },
      });
      expect(created.json).not.toHaveProperty('password');
      expect(await userRow(id)).toMatchObject({ source: 'scim', password_hash: null, roles: '[]', active: 1 });

      const found = await scim('GET', `/Users${q('userName eq "Isaac.Brock@Example.com"')}`);
      expect(found.json).toMatchObject({ totalResults: 1, itemsPerPage: 1, Resources: [{ id }] });
      expect((await scim('GET', `/Users/${id}`)).json).toEqual(created.json);

      const again = await scim('POST', '/Users', { ...okta, userName: 'ISAAC.BROCK@example.com', externalId: 'other' });
      expect(again.status).toBe(409);
      expect(again.headers['content-type']).toMatch(/^application\/scim\+json/);
      expect(again.json).toMatchObject({ schemas: [ERROR], status: '409', scimType: 'uniqueness' });

      const put = await scim('PUT', `/Users/${id}`, { ...okta, id, name: { givenName: 'Isaac', familyName: 'Brock-Smith' } });
      expect(put.status).toBe(200);
      expect(put.json).toMatchObject({ name: { familyName: 'Brock-Smith' }, meta: { version: 'W/"2"' } });

      const off = await scim('PATCH', `/Users/${id}`, { schemas: [PATCH_OP], Operations: [{ op: 'replace', value: { active: false } }] });
      expect([off.status, off.json.active]).toEqual([200, false]);
      expect((await userRow(id))?.active).toBe(0);

      const created_ = await audit('identity.user.create', id);
      expect(created_).toHaveLength(1);
      expect(created_[0]).toMatchObject({ outcome: 'success', resource: { type: 'user', id }, details: { roles: [], source: 'scim' } });
      // The username is personal data: encrypted under the user's subject key, not in the event's details.
      expect(created_[0]!.details).not.toHaveProperty('username');
      expect(created_[0]).toHaveProperty('personal');
      const updates = await audit('identity.user.update', id);
      expect(updates.map((e) => e.details)).toEqual([
        { changed: ['active'], source: 'scim' },
        { changed: ['family_name'], source: 'scim' },
      ]);
    });

    it('Azure AD: look up by externalId, create, PATCH with its quirks, deactivate (credentials revoked), delete', async () => {
      expect((await scim('GET', `/Users${q('externalId eq "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"')}`)).json.totalResults).toBe(0);
      const azure = {
        schemas: [USER, ENTERPRISE],
        externalId: '0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef',
        userName: 'Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1',
        active: true,
        emails: [{ primary: true, type: 'work', value: 'Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com' }],
        meta: { resourceType: 'User' },
        name: { formatted: 'givenName familyName', familyName: 'familyName', givenName: 'givenName' },
        roles: [],
        [ENTERPRISE]: { department: 'R&D', employeeNumber: '1234' },
      };
      const created = await scim('POST', '/Users', azure);
      expect(created.status).toBe(201);
      const id = created.json.id as string;
      expect((await scim('GET', `/Users${q('externalId eq "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"')}`)).json.Resources[0].id).toBe(id);

      const patched = await scim('PATCH', `/Users/${id}`, {
        schemas: [PATCH_OP],
        Operations: [
          { op: 'Replace', path: 'emails[type eq "work"].value', value: 'updatedEmail@microsoft.com' },
          { op: 'Replace', path: 'name.familyName', value: 'updatedFamilyName' },
          { op: 'Add', path: 'title', value: 'Engineer' },
          { op: 'Add', path: `${ENTERPRISE}:department`, value: 'Sales' },
        ],
      });
      expect(patched.status).toBe(200);
      expect(patched.json).toMatchObject({ emails: [{ value: 'updatedEmail@microsoft.com' }], name: { familyName: 'updatedFamilyName', givenName: 'givenName' } });

      // An API key of this user, and a check that it works before deprovisioning.
      const key = await new ApiKeyService(s.rt.storage).create(s.rt.storage.db, { name: 'user key', principal_id: id, permissions: ['auth:self:read'], created_by: null });
      expect((await s.clientWith(key.token).whoami()).principal_id).toBe(id);

      const off = await scim('PATCH', `/Users/${id}`, { schemas: [PATCH_OP], Operations: [{ op: 'Replace', path: 'active', value: 'False' }] });
      expect([off.status, off.json.active]).toEqual([200, false]);
      expect((await userRow(id))?.active).toBe(0);
      const keyRow = await s.rt.storage.db.selectFrom('api_keys').select('revoked_at').where('id', '=', key.id).executeTakeFirstOrThrow();
      expect(keyRow.revoked_at).not.toBeNull();
      await sleep(1100); // the node's 1 s cache of valid keys
      await expect(s.clientWith(key.token).whoami()).rejects.toMatchObject({ status: 401 });

      const del = await scim('DELETE', `/Users/${id}`);
      expect([del.status, del.headers['content-type'], del.headers['content-length']]).toEqual([204, undefined, undefined]);
      const gone = await scim('GET', `/Users/${id}`);
      expect(gone.status, JSON.stringify([del.json, gone.json])).toBe(404);
      expect(gone.json).toMatchObject({ schemas: [ERROR], status: '404' });
      expect((await audit('identity.user.delete', id))[0]).toMatchObject({ outcome: 'success', details: { erase_subject: false } });
    });

    it('groups: Okta and Azure AD create, look up, membership PATCHes, rename, conflict and delete', async () => {
      const users: string[] = [];
      for (const n of ['grace', 'heidi', 'ivan']) users.push((await scim('POST', '/Users', { schemas: [USER], userName: `${n}@groups.example`, displayName: n.toUpperCase() })).json.id);
      const [grace, heidi, ivan] = users as [string, string, string];

      // Okta pushes a group
      const okta = await scim('POST', '/Groups', { schemas: [GROUP], displayName: 'Test SCIMv2', members: [] });
      expect(okta.status).toBe(201);
      const gid = okta.json.id as string;
      expect(okta.json).toMatchObject({ schemas: [GROUP], displayName: 'Test SCIMv2', members: [], meta: { resourceType: 'Group', version: 'W/"1"' } });
      expect((await audit('identity.group.create', gid))[0]).toMatchObject({ details: { display_name: 'Test SCIMv2', roles: [], members: 0 } });

      const add = await scim('PATCH', `/Groups/${gid}`, { schemas: [PATCH_OP], Operations: [{ op: 'add', path: 'members', value: [{ value: grace, display: 'grace@groups.example' }, { value: heidi }] }] });
      expect(add.status).toBe(204);
      const read = await scim('GET', `/Groups/${gid}`);
      expect(read.json.members).toEqual(
        expect.arrayContaining([
          { value: grace, display: 'GRACE', type: 'User', $ref: `https://${s.addr}/scim/v2/Users/${grace}` },
          { value: heidi, display: 'HEIDI', type: 'User', $ref: `https://${s.addr}/scim/v2/Users/${heidi}` },
        ]),
      );
      expect((await scim('GET', `/Users/${grace}`)).json.groups).toEqual([{ value: gid, display: 'Test SCIMv2', type: 'direct', $ref: `https://${s.addr}/scim/v2/Groups/${gid}` }]);

      // Okta removes one member by filter and renames the group (with its id in the value, as Okta sends it)
      const okRemove = await scim('PATCH', `/Groups/${gid}`, {
        schemas: [PATCH_OP],
        Operations: [
          { op: 'remove', path: `members[value eq "${grace}"]` },
          { op: 'replace', value: { id: gid, displayName: 'Test SCIMv2 renamed' } },
        ],
      });
      expect(okRemove.status).toBe(204);
      const after = (await scim('GET', `/Groups/${gid}`)).json;
      expect([after.displayName, after.members.map((m: { value: string }) => m.value)]).toEqual(['Test SCIMv2 renamed', [heidi]]);

      // Azure AD: look up by displayName without members, create, Add/Remove with value lists, membership check
      const lookup = await scim('GET', `/Groups${q('displayName eq "Group1DisplayName"', '&excludedAttributes=members')}`);
      expect(lookup.json.totalResults).toBe(0);
      const azure = await scim('POST', '/Groups', { schemas: [GROUP], externalId: '8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159', displayName: 'Group1DisplayName', members: [{ value: ivan }] });
      expect(azure.status).toBe(201);
      const aid = azure.json.id as string;
      const byName = await scim('GET', `/Groups${q('displayName eq "Group1DisplayName"', '&excludedAttributes=members')}`);
      expect(byName.json.Resources).toEqual([expect.objectContaining({ id: aid, displayName: 'Group1DisplayName' })]);
      expect(byName.json.Resources[0]).not.toHaveProperty('members');
      const change = await scim('PATCH', `/Groups/${aid}`, {
        schemas: [PATCH_OP],
        Operations: [
          { op: 'Add', path: 'members', value: [{ value: grace }] },
          { op: 'Remove', path: 'members', value: [{ value: ivan }] },
        ],
      });
      expect(change.status).toBe(204);
      const check = async (member: string) => (await scim('GET', `/Groups${q(`id eq "${aid}" and members eq "${member}"`, '&excludedAttributes=members')}`)).json.totalResults;
      expect([await check(grace), await check(ivan)]).toEqual([1, 0]);
      expect((await audit('identity.group.update', aid)).map((e) => e.details)).toEqual([{ changed: ['members'] }]);

      const conflict = await scim('POST', '/Groups', { schemas: [GROUP], displayName: 'Group1DisplayName' });
      expect(conflict.json).toMatchObject({ status: '409', scimType: 'uniqueness' });
      const unknownMember = await scim('PATCH', `/Groups/${aid}`, { schemas: [PATCH_OP], Operations: [{ op: 'add', path: 'members', value: [{ value: 'usr_nobody' }] }] });
      expect(unknownMember.json).toMatchObject({ status: '400', scimType: 'invalidValue' });

      const put = await scim('PUT', `/Groups/${aid}`, { schemas: [GROUP], displayName: 'Group1DisplayName', externalId: '8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159', members: [{ value: heidi }, { value: ivan }] });
      expect(put.json.members.map((m: { value: string }) => m.value).sort()).toEqual([heidi, ivan].sort());

      for (const g of [gid, aid]) expect((await scim('DELETE', `/Groups/${g}`)).status).toBe(204);
      expect((await scim('GET', `/Groups/${aid}`)).status).toBe(404);
      expect((await audit('identity.group.delete', aid))[0]).toMatchObject({ details: { display_name: 'Group1DisplayName' } });
    });

    it('lists with startIndex/count, filters that scan (co, or, dates), and attributes/excludedAttributes', async () => {
      for (let i = 0; i < 5; i++) await scim('POST', '/Users', { schemas: [USER], userName: `pager${i}@pager.example`, emails: [{ value: `p${i}@pager.example`, primary: true }], name: { familyName: i % 2 ? 'Odd' : 'Even' } });
      const names = (a: Answer) => a.json.Resources.map((r: { userName: string }) => r.userName);
      const all = await scim('GET', `/Users${q('emails.value ew "@pager.example"')}`);
      expect(names(all).sort()).toEqual([0, 1, 2, 3, 4].map((i) => `pager${i}@pager.example`));
      const page = await scim('GET', `/Users${q('emails.value ew "@pager.example"', '&startIndex=2&count=2')}`);
      expect(page.json).toMatchObject({ totalResults: 5, startIndex: 2, itemsPerPage: 2 });
      expect(names(page)).toEqual(names(all).slice(1, 3)); // the directory's stable order
      const odd = await scim('GET', `/Users${q('(name.familyName eq "odd" or userName eq "pager0@pager.example") and meta.created ge "2000-01-01T00:00:00Z"', '&attributes=userName,name.familyName')}`);
      expect(odd.json.totalResults).toBe(3);
      expect(Object.keys(odd.json.Resources[0]).sort()).toEqual(['id', 'name', 'schemas', 'userName']);
      expect(Object.keys(odd.json.Resources[0].name)).toEqual(['familyName']);
      const slim = await scim('GET', `/Users${q('userName sw "pager"', '&excludedAttributes=groups,meta,emails&count=1')}`);
      expect(slim.json.Resources[0]).not.toHaveProperty('meta');
      expect(slim.json.Resources[0]).not.toHaveProperty('groups');
      expect(slim.json.Resources[0]).toHaveProperty('userName');
      const countOnly = await scim('GET', '/Users?count=0');
      expect(countOnly.json.itemsPerPage).toBe(0);
      expect(countOnly.json.totalResults).toBeGreaterThanOrEqual(5);
      expect((await scim('GET', '/Users?count=5000')).json.itemsPerPage).toBeLessThanOrEqual(200);
    });

    it('If-Match: a stale version is 412, the current one (or *) goes through', async () => {
      const u = await scim('POST', '/Users', { schemas: [USER], userName: 'etag@example.com' });
      const op = { schemas: [PATCH_OP], Operations: [{ op: 'replace', path: 'displayName', value: 'E' }] };
      const stale = await scim('PATCH', `/Users/${u.json.id}`, op, { headers: { 'if-match': 'W/"7"' } });
      expect(stale.status).toBe(412);
      expect(stale.json).toMatchObject({ schemas: [ERROR], status: '412' });
      const ok = await scim('PATCH', `/Users/${u.json.id}`, op, { headers: { 'if-match': u.headers.etag as string } });
      expect([ok.status, ok.headers.etag]).toEqual([200, 'W/"2"']);
      expect((await scim('DELETE', `/Users/${u.json.id}`, undefined, { headers: { 'if-match': '*' } })).status).toBe(204);
    });

    it('errors are SCIM documents: invalidFilter, invalidPath, invalidSyntax, invalidValue, 401, 403 and 404', async () => {
      const u = await scim('POST', '/Users', { schemas: [USER], userName: 'errors@example.com' });
      const cases: Array<[Promise<Answer>, number, string | undefined]> = [
        [scim('GET', `/Users${q('userName eq')}`), 400, 'invalidFilter'],
        [scim('GET', `/Users${q('userName eq "a" and (active eq true')}`), 400, 'invalidFilter'],
        [scim('GET', `/Users${q('shoeSize gt "9"')}`), 400, 'invalidFilter'],
        [scim('GET', `/Groups${q('displayName xx "a"')}`), 400, 'invalidFilter'],
        [scim('PATCH', `/Users/${u.json.id}`, { schemas: [PATCH_OP], Operations: [{ op: 'replace', path: 'shoeSize', value: '9' }] }), 400, 'invalidPath'],
        [scim('PATCH', `/Users/${u.json.id}`, { schemas: [PATCH_OP], Operations: [{ op: 'replace', path: 'emails[value co "nothing"].value', value: 'x@example.com' }] }), 400, 'noTarget'],
        [scim('PATCH', `/Users/${u.json.id}`, { schemas: [PATCH_OP], Operations: [{ op: 'replace', path: 'active', value: 'perhaps' }] }), 400, 'invalidValue'],
        [scim('POST', '/Users', '{"userName": '), 400, 'invalidSyntax'],
        [scim('POST', '/Users', { schemas: [USER], displayName: 'no userName' }), 400, 'invalidValue'],
        [scim('PATCH', '/Users/usr_nobody', { schemas: [PATCH_OP], Operations: [{ op: 'replace', path: 'active', value: false }] }), 404, undefined],
        [scim('GET', '/Users', undefined, { token: null }), 401, undefined],
        [scim('GET', '/Users', undefined, { token: 'pal_not_a_key_0000000000000000000000000000000' }), 401, undefined],
        [scim('GET', '/Nothing'), 404, undefined],
      ];
      for (const [p, status, scimType] of cases) {
        const r = await p;
        expect(r.headers['content-type'], JSON.stringify(r.json)).toMatch(/^application\/scim\+json/);
        expect(r.json).toEqual({ schemas: [ERROR], status: String(status), ...(scimType ? { scimType } : {}), detail: expect.any(String) });
      }
      // The failed write is audited too.
      expect((await s.client.audit.query({ type: 'identity.user.update', resource: 'usr_nobody' })).events[0]).toMatchObject({ outcome: 'failure', error_code: 'PAL_IDENTITY_USER_NOT_FOUND' });
    });

    it('an API key without SCIM permissions gets a SCIM 403; scim:users:read alone cannot write or read groups', async () => {
      const kms = (await s.client.createApiKey({ name: 'kms only', permissions: ['kms:encrypt'] })).token;
      const denied = await scim('GET', '/Users', undefined, { token: kms });
      expect(denied.status).toBe(403);
      expect(denied.headers['content-type']).toMatch(/^application\/scim\+json/);
      expect(denied.json).toEqual({ schemas: [ERROR], status: '403', detail: 'scim:users:read is not allowed: no role, binding or rule grants scim:users:read' });
      const reader = (await s.client.createApiKey({ name: 'scim reader', permissions: ['scim:users:read'] })).token;
      expect((await scim('GET', '/Users', undefined, { token: reader })).status).toBe(200);
      expect((await scim('POST', '/Users', { schemas: [USER], userName: 'nope@example.com' }, { token: reader })).json).toMatchObject({ status: '403' });
      expect((await scim('GET', '/Groups', undefined, { token: reader })).json).toMatchObject({ status: '403' });
    });

    it('local accounts (the owner\'s kind) are read-only to SCIM: a compromised IdP credential cannot disable or delete them', async () => {
      const local = await s.client.identity.createUser({ username: 'local-admin', password: 'correct horse battery staple', roles: ['security-admin'] });
      const patch = await scim('PATCH', `/Users/${local.id}`, { schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'], Operations: [{ op: 'replace', path: 'active', value: false }] });
      expect(patch.status).toBe(403);
      expect(patch.json).toMatchObject({ schemas: [ERROR], status: '403' });
      expect((await scim('DELETE', `/Users/${local.id}`)).status).toBe(403);
      expect((await userRow(local.id))!.active).toBe(1);
      expect((await scim('GET', `/Users/${local.id}`)).status).toBe(200); // IdPs may still see it to match accounts
    });

    it('accepts application/json bodies too and answers application/scim+json', async () => {
      const r = await scim('POST', '/Users', JSON.stringify({ schemas: [USER], userName: 'plain-json@example.com' }), { headers: { 'content-type': 'application/json' } });
      expect(r.status).toBe(201);
      expect(r.headers['content-type']).toMatch(/^application\/scim\+json/);
      expect(OWNER_TOKEN).not.toBe(scimToken);
    });
  });
});

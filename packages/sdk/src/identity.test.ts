/**
 * The SDK's identity client against a real server over HTTPS (SQLite): users, service identities and their API keys,
 * group roles, and the OAuth endpoints (client credentials, introspection, revocation, JWKS, discovery).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { codeOf, startServer, type TestServer } from '../../server/src/testing/harness.js';
import { httpsRequest } from '../../server/src/testing/https-request.js';
import { PalisadeApiError, type PalisadeClient } from './index.js';

const PASSWORD = 'correct horse battery staple';
const HOUR_MS = 3_600_000;

describe('SDK: identity (users, services, groups, OAuth) against a real server', () => {
  let s: TestServer;
  let c: PalisadeClient;
  const login = (username: string, password: string) => httpsRequest(s.addr, s.ca, 'POST', '/v1/auth/login', { json: { username, password } });

  beforeAll(async () => {
    s = await startServer('sqlite');
    c = s.client;
  });
  afterAll(async () => s?.close());

  it('users: create, list, get, update, set the password, end the sessions, disable, delete', async () => {
    const alice = await c.identity.createUser({ username: 'alice', password: PASSWORD, email: 'alice@example.com', display_name: 'Alice', roles: ['developer'], mfa_required: false });
    expect(alice).toMatchObject({ username: 'alice', email: 'alice@example.com', display_name: 'Alice', roles: ['developer'], active: true, mfa_required: false, has_password: true, source: 'local' });
    expect(alice.id).toMatch(/^usr_/);
    const bob = await c.identity.createUser({ username: 'bob' });
    expect(bob).toMatchObject({ roles: ['viewer'], has_password: false });

    expect(await codeOf(c.identity.createUser({ username: 'alice', password: PASSWORD }))).toEqual({ status: 409, code: 'PAL_IDENTITY_USER_EXISTS' });
    expect(await codeOf(c.identity.createUser({ username: 'weak', password: 'password1234' }))).toEqual({ status: 422, code: 'PAL_AUTH_PASSWORD_POLICY' });

    const all = await c.identity.listUsers();
    expect(all.total).toBe(2);
    expect(all.users.map((u) => u.username).sort()).toEqual(['alice', 'bob']);
    expect((await c.identity.listUsers({ username: 'ALICE' })).users.map((u) => u.id)).toEqual([alice.id]);
    const page = await c.identity.listUsers({ offset: 1, limit: 1 });
    expect([page.total, page.users.map((u) => u.id)]).toEqual([2, [all.users[1]!.id]]);
    expect(await c.identity.getUser(alice.id)).toEqual(alice);

    const updated = await c.identity.updateUser(alice.id, { email: 'a@example.com', display_name: 'Alice A.', roles: ['operator'], mfa_required: true });
    expect(updated).toMatchObject({ email: 'a@example.com', display_name: 'Alice A.', roles: ['operator'], mfa_required: true });
    expect(await c.identity.getUser(alice.id)).toEqual(updated);
    await c.identity.updateUser(alice.id, { mfa_required: false });

    // set the password: the new one signs in, the old one does not, and the sessions of before are gone
    expect((await login('alice', PASSWORD)).status).toBe(200);
    expect((await login('alice', PASSWORD)).status).toBe(200);
    expect(await c.identity.revokeSessions(alice.id)).toEqual({ sessions: 2 });
    expect(await c.identity.revokeSessions(alice.id)).toEqual({ sessions: 0 });
    const next = 'a different long passphrase here';
    await c.identity.setPassword(alice.id, next);
    expect((await login('alice', PASSWORD)).status).toBe(401);
    expect((await login('alice', next)).status).toBe(200);
    expect(await codeOf(c.identity.setPassword(alice.id, 'password1234'))).toMatchObject({ code: 'PAL_AUTH_PASSWORD_POLICY' });

    // disable: no sign-in (and its sessions end); enable again
    expect((await c.identity.updateUser(alice.id, { active: false })).active).toBe(false);
    expect((await login('alice', next)).status).toBe(401);
    expect((await c.identity.updateUser(alice.id, { active: true })).active).toBe(true);
    expect((await login('alice', next)).status).toBe(200);

    await c.identity.deleteUser(bob.id);
    expect(await codeOf(c.identity.getUser(bob.id))).toEqual({ status: 404, code: 'PAL_IDENTITY_USER_NOT_FOUND' });
    expect(await codeOf(c.identity.deleteUser(bob.id))).toMatchObject({ code: 'PAL_IDENTITY_USER_NOT_FOUND' });
    expect(await codeOf(c.identity.revokeSessions(bob.id))).toMatchObject({ code: 'PAL_IDENTITY_USER_NOT_FOUND' });
  });

  it('group roles: a SCIM group\'s members get the roles set on it', async () => {
    const carol = await c.identity.createUser({ username: 'carol', password: PASSWORD });
    const created = await httpsRequest(s.addr, s.ca, 'POST', '/scim/v2/Groups', {
      headers: { authorization: `Bearer ${s.token}`, 'content-type': 'application/scim+json' },
      json: { schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'], displayName: 'Engineering', members: [{ value: carol.id }] },
    });
    expect(created.status, created.text).toBe(201);
    const group = await c.identity.setGroupRoles(created.json.id as string, ['developer']);
    expect(group).toMatchObject({ id: created.json.id, display_name: 'Engineering', roles: ['developer'], members: [carol.id] });
    expect((await c.identity.setGroupRoles(group.id, [])).roles).toEqual([]);
    expect(await codeOf(c.identity.setGroupRoles(group.id, ['no-such-role']))).toMatchObject({ code: 'PAL_IDENTITY_UNKNOWN_ROLE' });
    expect(await codeOf(c.identity.setGroupRoles('grp_missing', ['viewer']))).toEqual({ status: 404, code: 'PAL_IDENTITY_GROUP_NOT_FOUND' });
    const ops = await c.identity.createGroup({ display_name: 'Operations', roles: ['operator'], members: [carol.id] });
    expect(ops).toMatchObject({ display_name: 'Operations', roles: ['operator'], members: [carol.id] });
    expect((await c.identity.listGroups()).groups.map((g) => g.display_name).sort()).toEqual(['Engineering', 'Operations']);
  });

  it('services: create, list, get, update, API keys as OAuth client secrets; client credentials, introspection, revocation', async () => {
    const svc = await c.identity.createService({ name: 'agent-runner', description: 'runs agents' });
    expect(svc).toMatchObject({ name: 'agent-runner', description: 'runs agents', roles: ['agent'], spiffe_id: null, active: true });
    const spiffe = await c.identity.createService({ name: 'billing', roles: ['developer'], spiffe_id: 'spiffe://palisade.test/billing' });
    expect(spiffe.spiffe_id).toBe('spiffe://palisade.test/billing');
    expect((await c.identity.listServices()).services.map((x) => x.name).sort()).toEqual(['agent-runner', 'billing']);
    expect(await c.identity.getService(svc.id)).toEqual(svc);
    expect(await c.identity.updateService(spiffe.id, { description: 'bills', roles: ['agent'] })).toMatchObject({ description: 'bills', roles: ['agent'] });
    expect(await codeOf(c.identity.createService({ name: 'agent-runner' }))).toMatchObject({ status: 409, code: 'PAL_IDENTITY_SERVICE_EXISTS' });

    const key = await c.identity.createServiceApiKey(svc.id, { name: 'oauth', permissions: ['kms:encrypt', 'pki:ca:read'], expires_in_days: 30 });
    expect(key).toMatchObject({ name: 'oauth', principal_id: svc.id, permissions: ['kms:encrypt', 'pki:ca:read'] });
    expect(Date.parse(key.expires_at!) - s.clock.now().getTime()).toBeCloseTo(30 * 24 * HOUR_MS, -5);
    expect(key.token).toMatch(/^pal_/);
    const client = { clientId: svc.id, clientSecret: key.token };

    const t = await c.identity.clientCredentials({ ...client, scope: 'kms:encrypt' });
    expect(t).toMatchObject({ token_type: 'Bearer', scope: 'kms:encrypt' });
    expect(t.expires_in).toBeGreaterThan(0);
    expect((await c.identity.clientCredentials({ ...client, scope: ['kms:encrypt', 'pki:ca:read'] })).scope).toBe('kms:encrypt pki:ca:read');
    expect((await c.identity.clientCredentials(client)).scope).toBe('kms:encrypt pki:ca:read');
    const tooMuch = await c.identity.clientCredentials({ ...client, scope: 'kms:keys:destroy' }).catch((e: unknown) => e);
    expect(tooMuch).toBeInstanceOf(PalisadeApiError);
    expect([(tooMuch as PalisadeApiError).status, (tooMuch as PalisadeApiError).code]).toEqual([400, 'invalid_scope']);
    expect(await codeOf(c.identity.clientCredentials({ clientId: svc.id, clientSecret: 'pal_wrong' }))).toEqual({ status: 401, code: 'invalid_client' });

    // introspection: by an administrator (bearer with oauth:tokens:introspect), or by the token's own client
    expect(await c.identity.introspect(t.access_token)).toMatchObject({ active: true, token_type: 'Bearer', sub: svc.id, client_id: svc.id, scope: 'kms:encrypt' });
    expect(await c.identity.introspect(t.access_token, client)).toMatchObject({ active: true, sub: svc.id });
    expect(await c.identity.introspect('not a token')).toEqual({ active: false });
    const other = await c.identity.createServiceApiKey(spiffe.id, { name: 'other' });
    expect(await c.identity.introspect(t.access_token, { clientId: spiffe.id, clientSecret: other.token })).toEqual({ active: false });

    // revocation: by the client itself, and by an administrator
    await c.identity.revokeToken(t.access_token, client);
    expect(await c.identity.introspect(t.access_token)).toEqual({ active: false });
    const t2 = await c.identity.clientCredentials(client);
    await c.identity.revokeToken(t2.access_token);
    expect(await c.identity.introspect(t2.access_token, client)).toEqual({ active: false });
    await c.identity.revokeToken('unknown'); // RFC 7009 §2.2: not an error

    // disabled: its keys are revoked with it, so the old one stays dead when it is enabled again; a new one works
    expect((await c.identity.updateService(svc.id, { active: false })).active).toBe(false);
    expect(await codeOf(c.identity.clientCredentials(client))).toMatchObject({ code: 'invalid_client' });
    await c.identity.updateService(svc.id, { active: true });
    expect(await codeOf(c.identity.clientCredentials(client))).toMatchObject({ code: 'invalid_client' });
    const renewed = await c.identity.createServiceApiKey(svc.id, { name: 'after', permissions: ['kms:encrypt'] });
    expect((await c.identity.clientCredentials({ clientId: svc.id, clientSecret: renewed.token })).token_type).toBe('Bearer');

    await c.identity.deleteService(spiffe.id);
    expect(await codeOf(c.identity.getService(spiffe.id))).toEqual({ status: 404, code: 'PAL_IDENTITY_SERVICE_NOT_FOUND' });
    expect(await codeOf(c.identity.clientCredentials({ clientId: spiffe.id, clientSecret: other.token }))).toMatchObject({ code: 'invalid_client' });
  });

  it('JWKS and discovery', async () => {
    const jwks = await c.identity.jwks();
    expect(jwks.keys.length).toBeGreaterThan(0);
    expect(jwks.keys[0]).toMatchObject({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', use: 'sig' });
    const d = await c.identity.discovery();
    expect(d.jwks_uri).toBe(`${d.issuer}/.well-known/jwks.json`);
    expect(d.token_endpoint).toBe(`${d.issuer}/v1/oauth/token`);
    expect(d.grant_types_supported).toContain('client_credentials');
    // public: no token needed
    const anonymous = s.clientWith('');
    expect((await anonymous.identity.jwks()).keys).toEqual(jwks.keys);
  });

  it('API key rotation with overlap: the replaced key works until the overlap ends, the new one after', async () => {
    const svc = await c.identity.createService({ name: 'rotating' });
    const old = await c.identity.createServiceApiKey(svc.id, { name: 'v1' });
    const fresh = await c.identity.createServiceApiKey(svc.id, { name: 'v2', replaces: old.id, overlap_hours: 2 });
    const listed = (await c.listApiKeys()).api_keys.find((k) => k.id === old.id)!;
    expect(Date.parse(listed.expires_at!) - s.clock.now().getTime()).toBeCloseTo(2 * HOUR_MS, -4);
    expect((await c.identity.clientCredentials({ clientId: svc.id, clientSecret: old.token })).token_type).toBe('Bearer');
    expect((await c.identity.clientCredentials({ clientId: svc.id, clientSecret: fresh.token })).token_type).toBe('Bearer');
    s.clock.advanceDays(1);
    expect(await codeOf(c.identity.clientCredentials({ clientId: svc.id, clientSecret: old.token }))).toEqual({ status: 401, code: 'invalid_client' });
    expect((await c.identity.clientCredentials({ clientId: svc.id, clientSecret: fresh.token })).token_type).toBe('Bearer');
    // a key of another principal cannot be "replaced"
    const stranger = await c.identity.createService({ name: 'stranger' });
    expect(await codeOf(c.identity.createServiceApiKey(stranger.id, { name: 'x', replaces: fresh.id }))).toMatchObject({ code: 'PAL_AUTH_API_KEY_NOT_FOUND' });
  });

  it('a service\'s API keys: listed without their tokens, revoked one by one', async () => {
    const svc = await c.identity.createService({ name: 'listed' });
    const key = await c.identity.createServiceApiKey(svc.id, { name: 'k1' });
    expect((await c.identity.listServiceApiKeys(svc.id)).api_keys.map((k) => k.id)).toEqual([key.id]);
    expect((await c.identity.revokeServiceApiKey(svc.id, key.id)).revoked_at).not.toBeNull();
  });
});

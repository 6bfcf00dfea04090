/**
 * Federated sign-in end to end over HTTPS: the Palisade server against the real OIDC provider (oidc-provider) and the
 * real SAML IdP (samlify) fixtures, on SQLite and PostgreSQL. JIT provisioning, group -> role mapping on every
 * sign-in, single-use state / RelayState, no takeover of a local account by email, refusal of disabled accounts,
 * IdP-initiated refused by default, SAML replay refused; every attempt audited.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getFreePort } from '@palisade/testkit';
import { dialects, OWNER_TOKEN, startServer, type TestServer } from '../../testing/harness.js';
import { httpsRequest, type HttpsAnswer } from '../../testing/https-request.js';
import { startOidcProvider, TEST_ACCOUNTS, type OidcTestProvider, type TestAccount } from '../../testing/oidc-provider.js';
import { startSamlIdp, type SamlIdpFixture } from '../../testing/saml-idp.js';
import { SESSION_COOKIE } from './engine.js';
import { safeNext } from './federation-routes.js';
import { mappedRoles, usernameCandidates } from './federation.js';

const owner = { authorization: `Bearer ${OWNER_TOKEN}` };

describe('federation helpers', () => {
  it('maps groups to roles: default roles, the union of mapped groups, unknown roles dropped, no prototype keys', () => {
    const policy = { default_roles: ['viewer'], role_mapping: { eng: ['developer'], ops: ['operator', 'not-a-role'] }, jit_provisioning: true };
    expect(mappedRoles(policy, ['eng', 'ops', 'other', 'constructor', '__proto__'])).toEqual(['developer', 'operator', 'viewer']);
    expect(mappedRoles(policy, [])).toEqual(['viewer']);
  });
  it('derives usernames deterministically: a verified email first, then <provider>-<sub>', () => {
    expect(usernameCandidates({ provider: 'okta', subject: 'abc', email: 'A@x.test', email_verified: true }).slice(0, 3)).toEqual(['a@x.test', 'okta-abc', 'okta-abc-2']);
    expect(usernameCandidates({ provider: 'okta', subject: 'abc', email: 'a@x.test', email_verified: false })[0]).toBe('okta-abc');
  });
  it('keeps `next` on our origin', () => {
    const u = 'https://palisade.test';
    expect(safeNext('/keys?x=1#y', u)).toBe('/keys?x=1#y');
    for (const bad of ['//evil.test/x', '/\\evil.test', 'https://evil.test/', 'javascript:alert(1)', '', undefined, '/a\nb']) expect(safeNext(bad, u)).toBe('/account/security');
  });
});

const accounts = TEST_ACCOUNTS as Record<string, TestAccount>;

for (const d of dialects()) {
  describe.skipIf(!d.available)(`federated sign-in over HTTPS (${d.name})`, () => {
    let s: TestServer;
    let op: OidcTestProvider;
    let idp: SamlIdpFixture;
    let publicUrl: string;
    const call = (method: string, path: string, opts: Parameters<typeof httpsRequest>[4] = {}) => httpsRequest(s.addr, s.ca, method, path, opts);
    /** Events of a type, oldest first. */
    const events = async (type: string) => (await s.client.audit.query({ type, limit: 500 })).events.sort((a, b) => a.index - b.index).map((e) => ({ ...e, details: e.details ?? {} }));
    const cookieOf = (r: HttpsAnswer) => {
      const set = ([] as string[]).concat(r.headers['set-cookie'] ?? []).find((h) => h.startsWith(SESSION_COOKIE));
      return set?.slice(SESSION_COOKIE.length + 1).split(';')[0] ?? '';
    };
    const me = (sid: string) => call('GET', '/v1/auth/session', { headers: { cookie: `${SESSION_COOKIE}=${sid}`, 'sec-fetch-site': 'same-origin' } });
    /** The server's path for a URL under the public URL (the test talks to the real address). */
    const pathOf = (url: string) => {
      const u = new URL(url);
      expect(u.origin).toBe(publicUrl);
      return u.pathname + u.search;
    };

    /** Login at Palisade, the browser at the provider, back at the callback: the callback's answer. */
    const oidcSignIn = async (login: string, next?: string) => {
      const start = await call('GET', `/v1/auth/oidc/test/login${next ? `?next=${encodeURIComponent(next)}` : ''}`);
      expect(start.status, start.text).toBe(302);
      const params = await op.authorize(String(start.headers.location), { login });
      const query = new URLSearchParams(params).toString();
      return { params, answer: await call('GET', `/v1/auth/oidc/test/callback?${query}`) };
    };

    const samlMetadata = async (provider: string) => {
      const r = await call('GET', `/v1/auth/saml/${provider}/metadata`);
      expect(r.status, r.text).toBe(200);
      return r.text;
    };
    const samlStart = async (provider: string) => {
      const start = await call('GET', `/v1/auth/saml/${provider}/login?next=/keys`);
      expect(start.status, start.text).toBe(302);
      const metadata = await samlMetadata(provider);
      const req = await idp.parseRedirect(String(start.headers.location), metadata);
      return { metadata, req };
    };

    beforeAll(async () => {
      publicUrl = `https://localhost:${await getFreePort()}`;
      [op, idp] = await Promise.all([startOidcProvider({ redirectUri: `${publicUrl}/v1/auth/oidc/test/callback` }), startSamlIdp()]);
      const saml = (allow_idp_initiated: boolean) => ({
        idp_entity_id: idp.entityId,
        idp_sso_url: idp.ssoUrl,
        idp_certificates: [idp.certificate],
        allow_idp_initiated,
        groups_attribute: 'groups',
        role_mapping: { 'saml-ops': ['operator'] },
        default_roles: ['viewer'],
        jit_provisioning: true,
      });
      s = await startServer(d.name, {
        mutate: (c) => {
          c.identity.public_url = publicUrl;
          c.identity.oidc = {
            test: {
              issuer: op.issuer,
              client_id: op.clientId,
              client_secret: op.clientSecret,
              scopes: ['openid', 'email', 'profile', 'groups'],
              groups_claim: 'groups',
              role_mapping: { engineering: ['developer'], 'palisade-admins': ['security-admin'], operators: ['operator'] },
              default_roles: ['viewer'],
              jit_provisioning: true,
              allow_insecure_http: true,
            },
          };
          c.identity.saml = { corp: saml(false), open: saml(true) };
        },
      });
    });
    afterAll(async () => {
      await s?.close();
      await op?.close();
    });

    it('lists the configured providers', async () => {
      const r = await call('GET', '/v1/auth/providers');
      expect(r.status, r.text).toBe(200);
      expect(r.json.providers).toEqual([
        { name: 'test', kind: 'oidc', login_url: '/v1/auth/oidc/test/login' },
        { name: 'corp', kind: 'saml', login_url: '/v1/auth/saml/corp/login' },
        { name: 'open', kind: 'saml', login_url: '/v1/auth/saml/open/login' },
      ]);
      expect((await call('GET', '/v1/auth/oidc/nope/login')).json.code).toBe('PAL_AUTH_IDP_NOT_FOUND');
    });

    it('OIDC: first sign-in provisions the account just in time with the mapped roles; the cookie is a session; the state is single use', async () => {
      const { params, answer } = await oidcSignIn('alice', '/keys?view=all');
      expect(answer.status, answer.text).toBe(200);
      expect(answer.text).toContain('content="0;url=/keys?view=all"');
      const set = ([] as string[]).concat(answer.headers['set-cookie'] ?? []).join(';');
      expect(set).toMatch(/^__Host-palisade_session=ps_[A-Za-z0-9_-]{43}; Path=\/; Secure; HttpOnly; SameSite=Strict; Max-Age=\d+$/);
      const who = await me(cookieOf(answer));
      expect(who.status, who.text).toBe(200);
      expect(who.json).toMatchObject({ username: 'alice@example.test', display_name: 'Alice Liddell', roles: ['developer', 'security-admin', 'viewer'], method: 'oidc:test' });

      const user = await call('GET', `/v1/users/${who.json.user_id}`, { headers: owner });
      expect(user.json).toMatchObject({ source: 'oidc:test', email: 'alice@example.test', has_password: false });

      // The same callback again: the pending record is gone.
      const replay = await call('GET', `/v1/auth/oidc/test/callback?${new URLSearchParams(params).toString()}`);
      expect(replay.status).toBe(401);
      expect(replay.json).toMatchObject({ code: 'PAL_AUTH_IDP_FAILED', reason: 'state_unknown' });
      expect(cookieOf(replay)).toBe('');

      const logins = await events('auth.login.oidc');
      const ok = logins.find((e) => e.outcome === 'success' && e.resource?.id === who.json.user_id)!;
      expect(ok.details).toMatchObject({ provider: 'test', issuer: op.issuer, roles: ['developer', 'security-admin', 'viewer'], created: true });
      expect(ok.details).not.toHaveProperty('email');
      expect(await s.rt.ledger.personal(ok.index)).toEqual({ email: 'alice@example.test' });
      expect(logins.some((e) => e.outcome === 'denied' && e.details.reason === 'state_unknown')).toBe(true);
      const created = (await events('identity.user.create')).find((e) => e.resource?.id === who.json.user_id)!;
      expect(created.details).toEqual({ roles: ['developer', 'security-admin', 'viewer'], source: 'oidc:test' });
      expect(await s.rt.ledger.personal(created.index)).toEqual({ username: 'alice@example.test', email: 'alice@example.test', display_name: 'Alice Liddell' });
      expect((await events('session.create')).some((e) => e.actor.principal_id === who.json.user_id && e.details.method === 'oidc:test' && e.details.mfa === false)).toBe(true);
    });

    it('OIDC: the next sign-in sets the roles to the current groups (a group removed at the IdP removes the role)', async () => {
      const before = accounts.alice!;
      accounts.alice = { ...before, groups: ['engineering'], name: 'Alice L.' };
      try {
        const { answer } = await oidcSignIn('alice');
        expect(answer.status, answer.text).toBe(200);
        expect(answer.text).toContain('content="0;url=/account/security"');
        const who = await me(cookieOf(answer));
        expect(who.json).toMatchObject({ username: 'alice@example.test', display_name: 'Alice L.', roles: ['developer', 'viewer'] });
        const updates = (await events('identity.user.update')).filter((e) => e.resource?.id === who.json.user_id);
        expect(updates.at(-1)?.details).toEqual({ changed: ['display_name', 'roles'], source: 'oidc:test' });
        const ok = (await events('auth.login.oidc')).filter((e) => e.outcome === 'success' && e.resource?.id === who.json.user_id);
        expect(ok.at(-1)?.details).toMatchObject({ created: false, roles: ['developer', 'viewer'] });
      } finally {
        accounts.alice = before;
      }
    });

    it('OIDC: an IdP user whose email is a local account\'s gets a separate account, never the local one', async () => {
      const local = await call('POST', '/v1/users', { headers: owner, json: { username: 'carol@example.test', email: 'carol@example.test', password: 'correct horse battery staple', roles: ['owner'] } });
      expect(local.status, local.text).toBe(201);
      const { answer } = await oidcSignIn('carol');
      expect(answer.status, answer.text).toBe(200);
      const who = await me(cookieOf(answer));
      expect(who.json.user_id).not.toBe(local.json.id);
      expect(who.json).toMatchObject({ username: 'test-carol', roles: ['viewer'] });
      // And the local account is untouched.
      const after = await call('GET', `/v1/users/${local.json.id}`, { headers: owner });
      expect(after.json).toMatchObject({ roles: ['owner'], source: 'local' });
    });

    it('OIDC: an unverified email does not become the username; a disabled federated account is refused and audited', async () => {
      const first = await oidcSignIn('bob');
      expect(first.answer.status, first.answer.text).toBe(200);
      const who = await me(cookieOf(first.answer));
      expect(who.json).toMatchObject({ username: 'test-bob', roles: ['operator', 'viewer'] });
      const off = await call('PATCH', `/v1/users/${who.json.user_id}`, { headers: owner, json: { active: false } });
      expect(off.status, off.text).toBe(200);
      const again = await oidcSignIn('bob');
      expect(again.answer.status).toBe(401);
      expect(again.answer.json).toMatchObject({ code: 'PAL_AUTH_LOGIN_FAILED', reason: 'disabled' });
      expect(cookieOf(again.answer)).toBe('');
      const denied = (await events('auth.login.oidc')).filter((e) => e.outcome === 'denied' && e.resource?.id === who.json.user_id);
      expect(denied.at(-1)).toMatchObject({ error_code: 'PAL_AUTH_LOGIN_FAILED', details: { provider: 'test', reason: 'disabled' } });
    });

    it('OIDC: a refusal at the provider is answered with the problem and audited', async () => {
      const start = await call('GET', '/v1/auth/oidc/test/login');
      const params = await op.authorize(String(start.headers.location), { deny: true });
      const r = await call('GET', `/v1/auth/oidc/test/callback?${new URLSearchParams(params).toString()}`);
      expect(r.status).toBe(401);
      expect(r.json).toMatchObject({ code: 'PAL_AUTH_IDP_FAILED', reason: 'provider_error' });
      expect((await events('auth.login.oidc')).some((e) => e.outcome === 'denied' && e.details.reason === 'provider_error')).toBe(true);
    });

    it('SAML: SP-initiated sign-in provisions the account with the mapped roles; a replayed response is refused', async () => {
      const { metadata, req } = await samlStart('corp');
      expect(req.acsUrl).toBe(`${publicUrl}/v1/auth/saml/corp/acs`);
      expect(req.issuer).toBe(`${publicUrl}/v1/auth/saml/corp/metadata`);
      const SAMLResponse = await idp.loginResponse({ spMetadata: metadata, inResponseTo: req.requestId, nameId: 'dave@corp.test', attributes: { groups: ['saml-ops', 'unmapped'], displayName: ['Dave Corp'] } });
      const form = { SAMLResponse, RelayState: req.relayState! };
      const r = await call('POST', pathOf(`${publicUrl}/v1/auth/saml/corp/acs`), { form });
      expect(r.status, r.text).toBe(200);
      expect(r.text).toContain('content="0;url=/keys"');
      const who = await me(cookieOf(r));
      expect(who.json).toMatchObject({ username: 'dave@corp.test', display_name: 'Dave Corp', roles: ['operator', 'viewer'], method: 'saml:corp' });

      // The same POST again (RelayState used up), and the same assertion under a fresh RelayState: both refused.
      const again = await call('POST', '/v1/auth/saml/corp/acs', { form });
      expect(again.json).toMatchObject({ code: 'PAL_AUTH_IDP_FAILED', reason: 'relay_state_mismatch' });
      const fresh = await samlStart('corp');
      const replayed = await call('POST', '/v1/auth/saml/corp/acs', { form: { SAMLResponse, RelayState: fresh.req.relayState! } });
      expect(replayed.status).toBe(401);
      expect(replayed.json.code).toBe('PAL_AUTH_IDP_FAILED');
      expect(['in_response_to_mismatch', 'replayed']).toContain(replayed.json.reason);

      const logins = await events('auth.login.saml');
      expect(logins.find((e) => e.outcome === 'success' && e.resource?.id === who.json.user_id)?.details).toMatchObject({ provider: 'corp', roles: ['operator', 'viewer'], created: true, idp_initiated: false });
      expect(logins.filter((e) => e.outcome === 'denied').map((e) => e.details.reason)).toEqual(expect.arrayContaining(['relay_state_mismatch', replayed.json.reason]));
    });

    it('SAML: an IdP-initiated response is refused by default; where allowed it signs in once and its replay is refused', async () => {
      const corpMeta = await samlMetadata('corp');
      const unsolicited = await idp.loginResponse({ spMetadata: corpMeta, nameId: 'erin@corp.test' });
      const refused = await call('POST', '/v1/auth/saml/corp/acs', { form: { SAMLResponse: unsolicited } });
      expect(refused.status).toBe(401);
      expect(refused.json).toMatchObject({ code: 'PAL_AUTH_IDP_FAILED', reason: 'idp_initiated_not_allowed' });
      expect((await events('auth.login.saml')).some((e) => e.outcome === 'denied' && e.details.reason === 'idp_initiated_not_allowed' && e.details.idp_initiated === true)).toBe(true);

      const openMeta = await samlMetadata('open');
      const allowed = await idp.loginResponse({ spMetadata: openMeta, nameId: 'erin@corp.test', attributes: { groups: ['saml-ops'] } });
      const ok = await call('POST', '/v1/auth/saml/open/acs', { form: { SAMLResponse: allowed } });
      expect(ok.status, ok.text).toBe(200);
      expect(ok.text).toContain('content="0;url=/account/security"');
      const who = await me(cookieOf(ok));
      expect(who.json).toMatchObject({ username: 'erin@corp.test', roles: ['operator', 'viewer'], method: 'saml:open' });

      const replay = await call('POST', '/v1/auth/saml/open/acs', { form: { SAMLResponse: allowed } });
      expect(replay.status).toBe(401);
      expect(replay.json).toMatchObject({ code: 'PAL_AUTH_IDP_FAILED', reason: 'replayed' });
      expect(cookieOf(replay)).toBe('');
      expect((await events('auth.login.saml')).some((e) => e.outcome === 'denied' && e.details.reason === 'replayed')).toBe(true);
    });
  });
}

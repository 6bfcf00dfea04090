import { createPrivateKey, createSecretKey, generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { SignJWT } from 'jose';
import { requireService } from '@palisade/testkit';
import { dialects, startServer, type TestServer } from '../../testing/harness.js';
import { httpsRequest } from '../../testing/https-request.js';
import { createRuntime } from '../../runtime.js';
import { createLogger } from '../../logging.js';
import { base32Decode, totp } from './totp.js';
import { SESSION_COOKIE } from './engine.js';

const PASSWORD = 'correct horse battery staple';
const redisUrl = inject('redisUrl');
if (!redisUrl) requireService('redis', 'Redis-backed sessions');

// Every flow over HTTPS on SQLite and PostgreSQL, with sessions in Redis and in the database.
const cases = dialects().flatMap((d) => [
  { ...d, sessions: 'redis' as const, available: d.available && redisUrl !== null },
  { ...d, sessions: 'database' as const },
]);

for (const c of cases) {
  describe.skipIf(!c.available)(`identity over HTTPS (${c.name}, sessions in ${c.sessions})`, () => {
    let s: TestServer;
    const call = (method: string, path: string, opts: Parameters<typeof httpsRequest>[4] = {}) => httpsRequest(s.addr, s.ca, method, path, opts);
    const owner = { authorization: `Bearer ${'pal_test_owner_token_0123456789abcdefghijklmnopqrstuvwxyz'}` };
    /** Headers a browser page of Palisade's own origin sends with its cookie. */
    const browser = (cookie: string) => ({ cookie: `${SESSION_COOKIE}=${cookie}`, 'sec-fetch-site': 'same-origin' });
    const sessionOf = (r: { headers: Record<string, string | string[] | undefined> }) => {
      const set = ([] as string[]).concat(r.headers['set-cookie'] ?? []).find((h) => h.startsWith(SESSION_COOKIE));
      return set?.slice(SESSION_COOKIE.length + 1).split(';')[0] ?? '';
    };
    const createUser = async (username: string, extra: Record<string, unknown> = {}) => {
      const r = await call('POST', '/v1/users', { headers: owner, json: { username, password: PASSWORD, ...extra } });
      expect(r.status, r.text).toBe(201);
      return r.json as { id: string };
    };
    const login = async (username: string, password = PASSWORD) => call('POST', '/v1/auth/login', { json: { username, password } });
    const events = async (type: string) => (await s.client.audit.query({ type, limit: 500 })).events;

    beforeAll(async () => {
      s = await startServer(c.name, { mutate: (cfg) => void (c.sessions === 'redis' && (cfg.redis_url = redisUrl!)) });
    });
    afterAll(async () => s?.close());

    it('a user signs in with a password; the session cookie is host-only, Secure, HttpOnly, SameSite=Strict; sign-out ends it', async () => {
      const u = await createUser('alice');
      const r = await login('ALICE');
      expect(r.status, r.text).toBe(200);
      expect(r.json).toMatchObject({ status: 'authenticated', user_id: u.id });
      const set = ([] as string[]).concat(r.headers['set-cookie'] ?? []).join(';');
      expect(set).toMatch(/^__Host-palisade_session=ps_[A-Za-z0-9_-]{43}; Path=\/; Secure; HttpOnly; SameSite=Strict; Max-Age=\d+$/);
      const sid = sessionOf(r);
      const me = await call('GET', '/v1/auth/session', { headers: browser(sid) });
      expect(me.status, me.text).toBe(200);
      expect(me.json).toMatchObject({ user_id: u.id, username: 'alice', roles: ['viewer'] });
      // A write with the cookie from another site is refused.
      const csrf = await call('POST', '/v1/auth/logout', { headers: { cookie: `${SESSION_COOKIE}=${sid}`, 'sec-fetch-site': 'cross-site' } });
      expect(csrf.json.code).toBe('PAL_AUTH_CSRF');
      expect((await call('POST', '/v1/auth/logout', { headers: browser(sid) })).status).toBe(204);
      expect((await call('GET', '/v1/auth/session', { headers: browser(sid) })).status).toBe(401);
      expect((await events('session.create')).length).toBeGreaterThan(0);
      expect((await events('auth.logout')).length).toBe(1);
      // Personal data (the username) is encrypted under the user's subject key, never in the event in clear.
      const created = (await events('identity.user.create')).find((e) => e.resource?.id === u.id)!;
      expect(created.details).not.toHaveProperty('username');
      expect(created).toHaveProperty('personal');
    });

    it('a wrong password and an unknown user get the same answer, and both are audited with the real reason', async () => {
      await createUser('bob');
      const wrong = await login('bob', 'not the password at all');
      const unknown = await login('nobody-here', 'not the password at all');
      expect([wrong.status, unknown.status]).toEqual([401, 401]);
      expect(wrong.json.code).toBe('PAL_AUTH_LOGIN_FAILED');
      expect(unknown.json.detail).toBe(wrong.json.detail);
      const denied = (await events('auth.login.password')).filter((e) => e.outcome === 'denied');
      expect(denied.map((e) => e.details?.reason)).toEqual(expect.arrayContaining(['bad_credentials', 'unknown_user']));
    });

    it('TOTP: enrol with a QR code, confirm, then sign-in needs the code; a code is accepted once; recovery codes work once', async () => {
      const u = await createUser('carol', { mfa_required: true });
      const sid = sessionOf(await login('carol'));
      const enroll = await call('POST', '/v1/auth/mfa/totp/enroll', { headers: browser(sid) });
      expect(enroll.status, enroll.text).toBe(200);
      expect(enroll.json.otpauth_uri).toMatch(/^otpauth:\/\/totp\/Palisade:carol\?secret=/);
      expect(enroll.json.qr_svg).toContain('<svg');
      const secret = base32Decode(enroll.json.secret);
      const now = () => s.clock.now().getTime();
      const confirm = await call('POST', '/v1/auth/mfa/totp/verify', { headers: browser(sid), json: { factor_id: enroll.json.factor_id, code: totp(secret, now()) } });
      expect(confirm.status, confirm.text).toBe(200);
      const codes = (await call('POST', '/v1/auth/mfa/recovery-codes', { headers: browser(sid) })).json.codes as string[];
      expect(codes).toHaveLength(10);

      s.clock.advanceDays(1 / 2880); // 30 s: the next step
      const step1 = await login('carol');
      expect(step1.json).toMatchObject({ status: 'mfa_required', methods: ['totp', 'recovery_code'] });
      const code = totp(secret, now());
      const ok = await call('POST', '/v1/auth/login/totp', { json: { mfa_token: step1.json.mfa_token, code } });
      expect(ok.status, ok.text).toBe(200);
      expect(ok.json.status).toBe('authenticated');
      // The same code again, in a new sign-in, is refused; so is the used mfa_token.
      const step2 = await login('carol');
      const replay = await call('POST', '/v1/auth/login/totp', { json: { mfa_token: step2.json.mfa_token, code } });
      expect(replay.json.code).toBe('PAL_AUTH_MFA_INVALID');
      expect((await call('POST', '/v1/auth/login/totp', { json: { mfa_token: step1.json.mfa_token, code } })).json.code).toBe('PAL_AUTH_MFA_TOKEN_INVALID');
      expect((await events('mfa.verify')).some((e) => e.outcome === 'denied' && e.details?.reason === 'replayed')).toBe(true);

      const rc = await call('POST', '/v1/auth/login/recovery-code', { json: { mfa_token: step2.json.mfa_token, code: codes[0]!.toUpperCase() } });
      expect(rc.status, rc.text).toBe(200);
      const step3 = await login('carol');
      expect((await call('POST', '/v1/auth/login/recovery-code', { json: { mfa_token: step3.json.mfa_token, code: codes[0] } })).json.code).toBe('PAL_AUTH_MFA_INVALID');

      // MFA is required for carol: her last factor cannot go, even with a fresh second factor.
      const sid2 = sessionOf(ok);
      const factors = (await call('GET', '/v1/auth/mfa/factors', { headers: browser(sid2) })).json;
      expect(factors).toMatchObject({ mfa_required: true, recovery_codes_remaining: 9 });
      const totpFactor = factors.factors.find((f: { kind: string }) => f.kind === 'totp');
      s.clock.advanceDays(1 / 2880);
      const fresh = await call('POST', '/v1/auth/step-up', { headers: browser(sid2), json: { code: totp(secret, now()) } });
      expect(fresh.status, fresh.text).toBe(200);
      const last = await call('DELETE', `/v1/auth/mfa/factors/${totpFactor.id}`, { headers: browser(sid2) });
      expect(last.json.code).toBe('PAL_AUTH_LAST_FACTOR');
      expect((await events('mfa.enroll')).filter((e) => e.resource?.id === totpFactor.id).length).toBe(2);
      void u;
    });

    it('step-up: removing a factor needs a second factor verified within the last minutes', async () => {
      await createUser('dave');
      const sid = sessionOf(await login('dave'));
      const enroll = (await call('POST', '/v1/auth/mfa/totp/enroll', { headers: browser(sid) })).json;
      await call('POST', '/v1/auth/mfa/totp/verify', { headers: browser(sid), json: { factor_id: enroll.factor_id, code: totp(base32Decode(enroll.secret), s.clock.now().getTime()) } });
      const r = await call('DELETE', `/v1/auth/mfa/factors/${enroll.factor_id}`, { headers: browser(sid) });
      expect(r.status).toBe(403);
      expect(r.json).toMatchObject({ code: 'PAL_AUTH_STEP_UP_REQUIRED', max_age_seconds: 600 });
    });

    it('credential stuffing from many sources is slowed and recorded; the real user from their own address and their other factors still work', async () => {
      const victims = await Promise.all(['erin', 'frank', 'grace'].map((n) => createUser(n)));
      const signIn = s.rt.identity.signIn;
      const attempt = (user: string, ip: string, password = 'guess-guess-guess') =>
        signIn.password({ ip, user_agent: 'stuffer', request_id: 'r' }, user, password).then(
          () => 'ok',
          (e: { code: string }) => e.code,
        );
      // A stuffing list: 10 sources, each trying 25 accounts once (the victims among made-up names). Each source trips
      // its own counter at 20; no account sees more than 10 failures, far below the account-wide threshold.
      const results: string[] = [];
      const names = ['erin', 'frank', 'grace', ...Array.from({ length: 22 }, (_, i) => `user${i}`)];
      for (let src = 0; src < 10; src++) for (const u of names) results.push(await attempt(u, `203.0.113.${src}`));
      expect(results.filter((r) => r === 'PAL_AUTH_THROTTLED').length).toBe(10 * 5);
      // The real user, from an address of their own, signs in.
      expect(await attempt('erin', '198.51.100.7', PASSWORD)).toBe('ok');
      const lockouts = await events('auth.lockout');
      expect(lockouts.some((e) => e.details?.rule === 'password_per_source')).toBe(true);
      // Hammering one account from everywhere trips the account-wide password counter only: its TOTP is untouched.
      for (let i = 0; i < 60; i++) await attempt('frank', `192.0.2.${i}`);
      expect(await attempt('frank', '198.51.100.8', PASSWORD)).toBe('PAL_AUTH_THROTTLED');
      expect(await s.rt.identity.signIn['deps'].throttle.blockedFor(s.rt.storage.db, [{ rule: 'second_factor_per_account', factor: 'totp', subject: victims[1]!.id }])).toBe(0);
      expect(lockouts.every((e) => e.details?.factor === 'password')).toBe(true);
    });

    it('client credentials: a service gets an EdDSA access token, uses it, introspects and revokes it', async () => {
      const svc = (await call('POST', '/v1/services', { headers: owner, json: { name: 'agent-runner', roles: ['agent'] } })).json;
      const key = await call('POST', `/v1/services/${svc.id}/api-keys`, { headers: owner, json: { name: 'oauth client' } });
      expect(key.status, key.text).toBe(201);
      const basic = { authorization: `Basic ${Buffer.from(`${svc.id}:${key.json.token}`).toString('base64')}` };
      const t = await call('POST', '/v1/oauth/token', { headers: basic, form: { grant_type: 'client_credentials', scope: 'kms:encrypt pki:ca:read' } });
      expect(t.status, t.text).toBe(200);
      expect(t.json).toMatchObject({ token_type: 'Bearer', expires_in: 300, scope: 'kms:encrypt pki:ca:read' });
      expect(JSON.parse(Buffer.from(t.json.access_token.split('.')[0], 'base64url').toString())).toMatchObject({ alg: 'EdDSA', typ: 'at+jwt' });
      const bearer = { authorization: `Bearer ${t.json.access_token}` };
      const who = await call('GET', '/v1/auth/whoami', { headers: bearer });
      expect(who.status, who.text).toBe(403); // auth:self:read is not in the token's scope
      expect((await call('GET', '/v1/pki/cas', { headers: bearer })).status).not.toBe(401);
      const tooMuch = await call('POST', '/v1/oauth/token', { headers: basic, form: { grant_type: 'client_credentials', scope: 'kms:keys:destroy' } });
      expect(tooMuch.json.error).toBe('invalid_scope');
      const badSecret = await call('POST', '/v1/oauth/token', { headers: { authorization: `Basic ${Buffer.from(`${svc.id}:pal_wrong`).toString('base64')}` }, form: { grant_type: 'client_credentials' } });
      expect([badSecret.status, badSecret.json.error]).toEqual([401, 'invalid_client']);

      const intro = await call('POST', '/v1/oauth/introspect', { headers: basic, form: { token: t.json.access_token } });
      expect(intro.json).toMatchObject({ active: true, sub: svc.id, client_id: svc.id, scope: 'kms:encrypt pki:ca:read' });
      const jwks = await call('GET', '/.well-known/jwks.json');
      expect(jwks.json.keys[0]).toMatchObject({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', use: 'sig' });
      const disco = await call('GET', '/.well-known/openid-configuration');
      expect(disco.json.jwks_uri).toMatch(/\/\.well-known\/jwks\.json$/);

      expect((await call('POST', '/v1/oauth/revoke', { headers: basic, form: { token: t.json.access_token } })).status).toBe(200);
      expect((await call('GET', '/v1/pki/cas', { headers: bearer })).json.code).toBe('PAL_AUTH_TOKEN_INVALID');
      expect((await call('POST', '/v1/oauth/introspect', { headers: basic, form: { token: t.json.access_token } })).json).toEqual({ active: false });
      expect((await events('token.issue')).some((e) => e.details?.grant_type === 'client_credentials')).toBe(true);
      expect((await events('token.revoke')).length).toBeGreaterThan(0);
    });

    it('forged, expired, alg none, HS256-with-the-public-key, wrong audience or issuer: all rejected', async () => {
      const svc = (await call('POST', '/v1/services', { headers: owner, json: { name: 'forgery-target' } })).json;
      const key = (await call('POST', `/v1/services/${svc.id}/api-keys`, { headers: owner, json: { name: 'k' } })).json;
      const basic = { authorization: `Basic ${Buffer.from(`${svc.id}:${key.token}`).toString('base64')}` };
      const good = (await call('POST', '/v1/oauth/token', { headers: basic, form: { grant_type: 'client_credentials', scope: 'pki:ca:read' } })).json.access_token as string;
      const [h, p] = good.split('.') as [string, string, string];
      const header = JSON.parse(Buffer.from(h, 'base64url').toString());
      const payload = JSON.parse(Buffer.from(p, 'base64url').toString());
      const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
      const jwk = (await call('GET', '/.well-known/jwks.json')).json.keys[0];
      const other = generateKeyPairSync('ed25519').privateKey;
      const sign = (claims: Record<string, unknown>, key = other) => new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid: header.kid }).sign(key);
      const forged = {
        'alg none': `${b64({ alg: 'none', typ: 'at+jwt', kid: header.kid })}.${p}.`,
        'HS256 with the public key': await new SignJWT(payload).setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: header.kid }).sign(createSecretKey(Buffer.from(JSON.stringify(jwk)))),
        'another key': await sign(payload),
        'tampered claims': `${h}.${b64({ ...payload, scope: 'kms:keys:destroy' })}.${good.split('.')[2]}`,
        'wrong typ': `${b64({ ...header, typ: 'JWT' })}.${p}.${good.split('.')[2]}`,
      };
      for (const [name, token] of Object.entries(forged)) {
        const r = await call('GET', '/v1/pki/cas', { headers: { authorization: `Bearer ${token}` } });
        expect([name, r.status, r.json.code]).toEqual([name, 401, 'PAL_AUTH_TOKEN_INVALID']);
      }
      // Claims checks with a genuine signature: mint through the service with other claims.
      const tokens = s.rt.identity.tokens;
      const mint = async (patch: Record<string, unknown>) => {
        const t = await tokens.issueAccess(s.rt.storage.db, { sub: svc.id, client_id: svc.id, scope: ['pki:ca:read'] });
        const [hh, pp] = t.token.split('.') as [string, string];
        const claims = { ...JSON.parse(Buffer.from(pp, 'base64url').toString()), ...patch };
        const input = `${hh}.${b64(claims)}`;
        const sig = await s.rt.kms.systemSign(s.rt.storage.db, 'system/identity/token-signing', Buffer.from(input));
        return `${input}.${sig.signature.toString('base64url')}`;
      };
      expect((await call('GET', '/v1/pki/cas', { headers: { authorization: `Bearer ${await mint({})}` } })).status).toBe(200);
      for (const patch of [{ aud: 'someone-else' }, { iss: 'https://evil.example' }, { exp: Math.floor(Date.now() / 1000) - 3600 }]) {
        const r = await call('GET', '/v1/pki/cas', { headers: { authorization: `Bearer ${await mint(patch)}` } });
        expect([patch, r.status, r.json.code]).toEqual([patch, 401, 'PAL_AUTH_TOKEN_INVALID']);
      }
      void createPrivateKey;
    });

    it('refresh tokens rotate on use; a reused one revokes its whole family', async () => {
      await createUser('heidi', { roles: ['developer'] });
      const sid = sessionOf(await login('heidi'));
      const first = await call('POST', '/v1/auth/token', { headers: browser(sid), json: { scope: 'kms:keys:read' } });
      expect(first.status, first.text).toBe(200);
      // The signed-in user's client is public: the refresh token is the credential, rotated on every use.
      const refresh = (token: string) => call('POST', '/v1/oauth/token', { form: { grant_type: 'refresh_token', refresh_token: token, client_id: 'palisade-session' } });
      const second = await refresh(first.json.refresh_token);
      expect(second.status, second.text).toBe(200);
      expect(second.json.refresh_token).not.toBe(first.json.refresh_token);
      expect((await call('GET', '/v1/keys/none-such', { headers: { authorization: `Bearer ${second.json.access_token}` } })).status).toBe(404);
      const reuse = await refresh(first.json.refresh_token);
      expect([reuse.status, reuse.json.error]).toEqual([400, 'invalid_grant']);
      const third = await refresh(second.json.refresh_token);
      expect([third.status, third.json.error]).toEqual([400, 'invalid_grant']); // the family died with the reuse
      expect((await events('token.revoke')).some((e) => e.details?.reason === 'refresh_token_reuse')).toBe(true);
      // The public client has no other grant.
      const cc = await call('POST', '/v1/oauth/token', { form: { grant_type: 'client_credentials', client_id: 'palisade-session' } });
      expect(cc.json.error).toBe('unauthorized_client');
    });

    it('deprovisioning a user ends their sessions and tokens at once', async () => {
      const u = await createUser('ivan', { roles: ['developer'] });
      const sid = sessionOf(await login('ivan'));
      const tok = (await call('POST', '/v1/auth/token', { headers: browser(sid), json: { scope: 'kms:keys:list' } })).json;
      const key = (await call('POST', '/v1/auth/api-keys', { headers: owner, json: { name: 'ivan', permissions: ['kms:keys:list'] } })).json;
      await s.rt.storage.db.updateTable('api_keys').set({ principal_id: u.id }).where('id', '=', key.id).execute();
      expect((await call('GET', '/v1/keys', { headers: { authorization: `Bearer ${tok.access_token}` } })).status).toBe(200);
      const off = await call('PATCH', `/v1/users/${u.id}`, { headers: owner, json: { active: false } });
      expect(off.status, off.text).toBe(200);
      expect(off.json.active).toBe(false);
      expect((await call('GET', '/v1/auth/session', { headers: browser(sid) })).status).toBe(401);
      expect((await call('GET', '/v1/keys', { headers: { authorization: `Bearer ${tok.access_token}` } })).json.code).toBe('PAL_AUTH_TOKEN_INVALID');
      expect((await s.rt.identity.tokens.refresh(s.rt.storage.db, tok.refresh_token, 'palisade-session', null)).ok).toBe(false);
      expect((await login('ivan')).status).toBe(401);
      await new Promise((r) => setTimeout(r, 1100)); // the API key cache holds a valid key for at most a second
      expect((await call('GET', '/v1/keys', { headers: { authorization: `Bearer ${key.token}` } })).status).toBe(401);
    });

    it('MFA required and none enrolled: the session can enrol a factor and do nothing else until then', async () => {
      await createUser('liam', { mfa_required: true });
      const r = await login('liam');
      expect(r.json).toMatchObject({ status: 'authenticated', mfa_enrollment_required: true });
      const sid = sessionOf(r);
      expect((await call('GET', '/v1/pki/cas', { headers: browser(sid) })).json.code).toBe('PAL_FORBIDDEN');
      const enroll = (await call('POST', '/v1/auth/mfa/totp/enroll', { headers: browser(sid) })).json;
      await call('POST', '/v1/auth/mfa/totp/verify', { headers: browser(sid), json: { factor_id: enroll.factor_id, code: totp(base32Decode(enroll.secret), s.clock.now().getTime()) } });
      expect((await call('GET', '/v1/pki/cas', { headers: browser(sid) })).status).not.toBe(403);
    });

    it('sessions end after the idle time-out', async () => {
      await createUser('mona');
      const sid = sessionOf(await login('mona'));
      expect((await call('GET', '/v1/auth/session', { headers: browser(sid) })).status).toBe(200);
      s.clock.advanceDays(31 / 1440);
      expect((await call('GET', '/v1/auth/session', { headers: browser(sid) })).status).toBe(401);
    });


    it('sessions end at the absolute time-out however active they are', async () => {
      await createUser('pia');
      const sid = sessionOf(await login('pia'));
      // Used every 25 minutes (inside the 30-minute idle window) for 11 h 40 min: still alive.
      for (let i = 0; i < 28; i++) {
        s.clock.advanceDays(25 / 1440);
        expect((await call('GET', '/v1/auth/session', { headers: browser(sid) })).status).toBe(200);
      }
      s.clock.advanceDays(25 / 1440); // 12 h 5 min after sign-in
      expect((await call('GET', '/v1/auth/session', { headers: browser(sid) })).status).toBe(401);
    });

    it('a service API key rotates with an overlap: both work until the old one expires; last use is recorded', async () => {
      const svc = (await call('POST', '/v1/services', { headers: owner, json: { name: 'rotating' } })).json;
      const k1 = (await call('POST', `/v1/services/${svc.id}/api-keys`, { headers: owner, json: { name: 'v1', permissions: ['pki:ca:read'] } })).json;
      const use = (t: string) => call('GET', '/v1/pki/cas', { headers: { authorization: `Bearer ${t}` } });
      expect((await use(k1.token)).status).toBe(200);
      const k2 = await call('POST', `/v1/services/${svc.id}/api-keys`, { headers: owner, json: { name: 'v2', permissions: ['pki:ca:read'], replaces: k1.id, overlap_hours: 1 } });
      expect(k2.status, k2.text).toBe(201);
      expect((await use(k1.token)).status).toBe(200);
      expect((await use(k2.json.token)).status).toBe(200);
      s.clock.advanceDays(2 / 24);
      await new Promise((r) => setTimeout(r, 1100)); // past the one-second cache of valid keys
      expect((await use(k1.token)).status).toBe(401);
      expect((await use(k2.json.token)).status).toBe(200);
      const listed = (await call('GET', '/v1/auth/api-keys', { headers: owner })).json.api_keys.find((k: { id: string }) => k.id === k1.id);
      expect(listed.last_used_at).not.toBeNull();
      const wider = await call('POST', `/v1/services/${svc.id}/api-keys`, { headers: owner, json: { name: 'v3', permissions: ['kms:keys:destroy'] } });
      expect(wider.json.code).toBe('PAL_AUTH_GRANT_EXCEEDS');
    });

    it('organisations: users and services belong to one; an unknown one is refused', async () => {
      const org = await call('POST', '/v1/orgs', { headers: owner, json: { name: 'research', display_name: 'Research' } });
      expect(org.status, org.text).toBe(201);
      expect((await call('POST', '/v1/orgs', { headers: owner, json: { name: 'research' } })).json.code).toBe('PAL_IDENTITY_ORG_EXISTS');
      const u = await createUser('olga', { org_id: org.json.id });
      expect((await call('GET', `/v1/users/${u.id}`, { headers: owner })).json.org_id).toBe(org.json.id);
      const inOrg = (await call('GET', `/v1/users?org_id=${org.json.id}`, { headers: owner })).json;
      expect(inOrg.users.map((x: { username: string }) => x.username)).toEqual(['olga']);
      const svc = await call('POST', '/v1/services', { headers: owner, json: { name: 'research-agent', org_id: org.json.id } });
      expect(svc.json.org_id).toBe(org.json.id);
      expect((await call('POST', '/v1/users', { headers: owner, json: { username: 'nobody', org_id: 'org_missing' } })).json.code).toBe('PAL_IDENTITY_ORG_NOT_FOUND');
      const orgs = (await call('GET', '/v1/orgs', { headers: owner })).json.organizations.map((o: { name: string }) => o.name);
      expect(orgs.sort()).toEqual(['default', 'research']);
      expect((await events('identity.org.create')).map((e) => e.outcome).sort()).toEqual(['failure', 'success']); // the duplicate is recorded too
    });

    it('groups made by an administrator give their roles to members; a service\'s API keys are listed and revoked per service', async () => {
      const u = await createUser('quinn');
      const sid = sessionOf(await login('quinn'));
      const newKey = () => call('POST', '/v1/keys', { headers: browser(sid), json: { key_type: 'DEK', algorithm: 'AES-256-GCM', classification: 'internal' } });
      expect((await newKey()).status).toBe(403); // a viewer cannot create keys
      const g = await call('POST', '/v1/groups', { headers: owner, json: { display_name: 'key-admins', roles: ['developer'], members: [u.id] } });
      expect(g.status, g.text).toBe(201);
      expect((await newKey()).status).toBe(201); // the group's developer role
      expect((await call('GET', '/v1/groups', { headers: owner })).json.groups.map((x: { display_name: string }) => x.display_name)).toContain('key-admins');

      const svc = (await call('POST', '/v1/services', { headers: owner, json: { name: 'keyed' } })).json;
      const k = (await call('POST', `/v1/services/${svc.id}/api-keys`, { headers: owner, json: { name: 'one' } })).json;
      const listed = (await call('GET', `/v1/services/${svc.id}/api-keys`, { headers: owner })).json.api_keys;
      expect(listed.map((x: { id: string }) => x.id)).toEqual([k.id]);
      expect(JSON.stringify(listed)).not.toContain(k.token);
      expect((await call('DELETE', `/v1/services/${svc.id}/api-keys/${k.id}`, { headers: owner })).json.revoked_at).not.toBeNull();
      expect((await call('DELETE', `/v1/services/${svc.id}/api-keys/ak_missing`, { headers: owner })).json.code).toBe('PAL_AUTH_API_KEY_NOT_FOUND');
    });

    it('weak passwords are refused with the violations; nobody grants a role above their own', async () => {
      const weak = await call('POST', '/v1/users', { headers: owner, json: { username: 'judy', password: 'password1234' } });
      expect(weak.status).toBe(422);
      expect(weak.json).toMatchObject({ code: 'PAL_AUTH_PASSWORD_POLICY', violations: ['common'] });
      const withMail = await createUser('kim', { roles: ['operator'], email: 'kim@example.test' });
      const cleared = await call('PATCH', `/v1/users/${withMail.id}`, { headers: owner, json: { email: null } });
      expect(cleared.json.email).toBeNull(); // null clears (not coerced to "")
      const sid = sessionOf(await login('kim'));
      const up = await call('POST', '/v1/services', { headers: browser(sid), json: { name: 'escalate', roles: ['owner'] } });
      expect(up.json.code).toBe('PAL_AUTH_GRANT_EXCEEDS');
    });
  });
}

// Two nodes on one PostgreSQL and one Redis: what one node revokes, the other refuses.
const pgUrl = inject('pgUrl');
describe.skipIf(!pgUrl || !redisUrl)('identity across two nodes (PostgreSQL, Redis)', () => {
  it('a session ended or a user deprovisioned on one node is refused on the other within a second', async () => {
    const a = await startServer('postgres', { mutate: (cfg) => void (cfg.redis_url = redisUrl!) });
    const b = await createRuntime(a.rt.config, { log: createLogger('silent'), tls: true, clock: a.clock.now });
    try {
      await b.app.listen({ host: '127.0.0.1', port: 0 });
      const addrB = `127.0.0.1:${(b.app.server.address() as { port: number }).port}`;
      const onA = (method: string, path: string, opts: Parameters<typeof httpsRequest>[4] = {}) => httpsRequest(a.addr, a.ca, method, path, opts);
      const onB = (method: string, path: string, opts: Parameters<typeof httpsRequest>[4] = {}) => httpsRequest(addrB, a.ca, method, path, opts);
      const owner = { authorization: `Bearer ${a.token}` };
      const user = (await onA('POST', '/v1/users', { headers: owner, json: { username: 'nora', password: PASSWORD, roles: ['developer'] } })).json;
      const signIn = async () => {
        const r = await onA('POST', '/v1/auth/login', { json: { username: 'nora', password: PASSWORD } });
        return String(([] as string[]).concat(r.headers['set-cookie'] ?? [])[0]).split(';')[0]!.split('=')[1]!;
      };
      const browser = (sid: string) => ({ cookie: `${SESSION_COOKIE}=${sid}`, 'sec-fetch-site': 'same-origin' });

      // A session made on A works on B; ended on B (sign-out), it is gone on A.
      const sid = await signIn();
      expect((await onB('GET', '/v1/auth/session', { headers: browser(sid) })).status).toBe(200);
      expect((await onB('POST', '/v1/auth/logout', { headers: browser(sid) })).status).toBe(204);
      expect((await onA('GET', '/v1/auth/session', { headers: browser(sid) })).status).toBe(401);

      // An administrator on B ends the user's sessions: refused on A at once.
      const sid2 = await signIn();
      expect((await onB('POST', `/v1/users/${user.id}/sessions/revoke`, { headers: owner })).json.sessions).toBe(1);
      expect((await onA('GET', '/v1/auth/session', { headers: browser(sid2) })).status).toBe(401);

      // Deprovisioned on B: A refuses the session and the access token once its one-second principal cache turns over
      // (polled, with a generous deadline rather than a timed assertion).
      const sid3 = await signIn();
      const tok = (await onA('POST', '/v1/auth/token', { headers: browser(sid3), json: { scope: 'kms:keys:list' } })).json.access_token as string;
      expect((await onA('GET', '/v1/keys', { headers: { authorization: `Bearer ${tok}` } })).status).toBe(200);
      expect((await onB('PATCH', `/v1/users/${user.id}`, { headers: owner, json: { active: false } })).status).toBe(200);
      const started = Date.now();
      let refusedAfter = -1;
      while (Date.now() - started < 15_000) {
        const [session, token] = await Promise.all([onA('GET', '/v1/auth/session', { headers: browser(sid3) }), onA('GET', '/v1/keys', { headers: { authorization: `Bearer ${tok}` } })]);
        if (session.status === 401 && token.status === 401) {
          refusedAfter = Date.now() - started;
          break;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(refusedAfter).toBeGreaterThanOrEqual(0);
    } finally {
      await b.close();
      await a.close();
    }
  });
});

describe('access-token keys: ES256 and rotation', () => {
  it('ES256 tokens (P-256 in the KMS); after the key rotates, old tokens still verify and the JWKS lists both versions', async () => {
    const s = await startServer('sqlite', { mutate: (cfg) => void (cfg.identity.tokens.algorithm = 'ES256') });
    try {
      const call = (method: string, path: string, opts: Parameters<typeof httpsRequest>[4] = {}) => httpsRequest(s.addr, s.ca, method, path, opts);
      const owner = { authorization: `Bearer ${s.token}` };
      const svc = (await call('POST', '/v1/services', { headers: owner, json: { name: 'es256' } })).json;
      const key = (await call('POST', `/v1/services/${svc.id}/api-keys`, { headers: owner, json: { name: 'k' } })).json;
      const basic = { authorization: `Basic ${Buffer.from(`${svc.id}:${key.token}`).toString('base64')}` };
      const grant = async () => (await call('POST', '/v1/oauth/token', { headers: basic, form: { grant_type: 'client_credentials', scope: 'pki:ca:read' } })).json.access_token as string;
      const header = (t: string) => JSON.parse(Buffer.from(t.split('.')[0]!, 'base64url').toString()) as { alg: string; kid: string };
      const before = await grant();
      expect(header(before).alg).toBe('ES256');
      expect(Buffer.from(before.split('.')[2]!, 'base64url')).toHaveLength(64); // JOSE r || s, not DER
      const jwks1 = (await call('GET', '/.well-known/jwks.json')).json.keys;
      expect(jwks1).toEqual([expect.objectContaining({ kty: 'EC', crv: 'P-256', alg: 'ES256' })]);

      const row = await s.rt.storage.db.selectFrom('kms_keys').select('key_id').where('name', '=', 'system/identity/token-signing').executeTakeFirstOrThrow();
      await s.rt.storage.transact((tx) => s.rt.kms.rotate({ db: tx }, row.key_id, 'manual'));
      const after = await grant();
      expect(header(after).kid).not.toBe(header(before).kid);
      const use = (t: string) => call('GET', '/v1/pki/cas', { headers: { authorization: `Bearer ${t}` } });
      expect((await use(before)).status).toBe(200);
      expect((await use(after)).status).toBe(200);
      const kids = (await call('GET', '/.well-known/jwks.json')).json.keys.map((k: { kid: string }) => k.kid);
      expect(kids).toEqual(expect.arrayContaining([header(before).kid, header(after).kid]));
    } finally {
      await s.close();
    }
  });
});

import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHash, webcrypto } from 'node:crypto';
import { PalisadeError } from '@palisade/core';
import type { ErrorCode } from '@palisade/core';
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, exportJWK, exportSPKI, generateKeyPair, SignJWT } from 'jose';
import type { JWK, JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOidcProvider } from '../../testing/oidc-provider.js';
import type { OidcTestProvider } from '../../testing/oidc-provider.js';
import { OidcRelyingParty, validateIdToken } from './oidc-rp.js';
import type { OidcPending, OidcProviderSettings } from './oidc-rp.js';

async function rejection(p: Promise<unknown>): Promise<PalisadeError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(PalisadeError);
    return e as PalisadeError;
  }
  throw new Error('expected a rejection');
}

async function expectRefused(p: Promise<unknown>, code: ErrorCode, reason: string): Promise<PalisadeError> {
  const e = await rejection(p);
  expect({ code: e.code, reason: e.extensions.reason }).toEqual({ code, reason });
  return e;
}

/** A fetch that records the paths it was asked for, and lets a test rewrite the answer of one of them. */
function recordingFetch(rewrite?: (url: URL, res: Response) => Promise<Response>): { fetch: typeof fetch; paths: string[] } {
  const paths: string[] = [];
  const f: typeof fetch = async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : input.toString());
    paths.push(url.pathname);
    const res = await fetch(input, init);
    return rewrite ? rewrite(url, res) : res;
  };
  return { fetch: f, paths };
}

describe('OIDC relying party against a real oidc-provider', () => {
  let op: OidcTestProvider;
  let full: OidcTestProvider;

  beforeAll(async () => {
    [op, full] = await Promise.all([startOidcProvider(), startOidcProvider({ fullIdToken: true, idTokenAlg: 'ES256' })]);
  });
  afterAll(async () => {
    await Promise.all([op?.close(), full?.close()]);
  });

  function settings(p: OidcTestProvider, over: Partial<OidcProviderSettings> = {}): OidcProviderSettings {
    return {
      name: 'test',
      issuer: p.issuer,
      client_id: p.clientId,
      client_secret: p.clientSecret,
      redirect_uri: p.redirectUri,
      scopes: ['openid', 'email', 'profile', 'groups'],
      groups_claim: 'groups',
      allowInsecureHttp: true,
      ...over,
    };
  }

  /** The first leg, the browser's trip through the provider, and the callback's query. */
  async function signIn(rp: OidcRelyingParty, p: OidcTestProvider = op, as: { login?: string; deny?: boolean } = {}): Promise<{ params: Record<string, string>; pending: OidcPending }> {
    const { url, pending } = await rp.authorizationRequest();
    return { params: await p.authorize(url, as), pending };
  }

  it('signs in with code + PKCE S256, state and nonce, and reads email, name and groups (UserInfo for a thin ID token)', async () => {
    const rec = recordingFetch();
    const rp = new OidcRelyingParty(settings(op), { fetch: rec.fetch });
    const { url, pending } = await rp.authorizationRequest();
    const q = new URL(url).searchParams;
    expect(q.get('response_type')).toBe('code');
    expect(q.get('client_id')).toBe(op.clientId);
    expect(q.get('redirect_uri')).toBe(op.redirectUri);
    expect(q.get('scope')).toBe('openid email profile groups');
    expect(q.get('state')).toBe(pending.state);
    expect(q.get('nonce')).toBe(pending.nonce);
    expect(q.get('code_challenge_method')).toBe('S256');
    expect(q.get('code_challenge')).toBe(createHash('sha256').update(pending.code_verifier).digest('base64url'));
    for (const v of [pending.state, pending.nonce, pending.code_verifier]) expect(v).toMatch(/^[A-Za-z0-9_-]{43}$/); // 256 bits
    expect(new Set([pending.state, pending.nonce, pending.code_verifier]).size).toBe(3);
    expect(q.has('client_secret')).toBe(false);

    const params = await op.authorize(url);
    expect(params.iss).toBe(op.issuer); // RFC 9207, as the provider sends it
    expect(params.code).toBeTruthy();
    const id = await rp.complete(params, pending);
    expect(id).toMatchObject({ issuer: op.issuer, subject: 'alice', email: 'alice@example.test', email_verified: true, name: 'Alice Liddell', groups: ['engineering', 'palisade-admins'] });
    expect(id.claims.aud).toBe(op.clientId);
    expect(rec.paths).toEqual(['/.well-known/openid-configuration', '/token', '/jwks', '/me']);

    // Discovery and keys are cached: the second sign-in costs only the token and UserInfo calls.
    const again = await signIn(rp);
    await rp.complete(again.params, again.pending);
    expect(rec.paths.slice(4)).toEqual(['/token', '/me']);
  });

  it('takes a single-string group as one group, and a missing groups claim as none', async () => {
    const rp = new OidcRelyingParty(settings(op));
    const bob = await signIn(rp, op, { login: 'bob' });
    expect(await rp.complete(bob.params, bob.pending)).toMatchObject({ subject: 'bob', groups: ['operators'], email_verified: false });
    const carol = await signIn(rp, op, { login: 'carol' });
    expect(await rp.complete(carol.params, carol.pending)).toMatchObject({ subject: 'carol', groups: [], email: 'carol@example.test' });
  });

  it('reads the claims from the ID token alone when it carries them (ES256 here), without calling UserInfo', async () => {
    const rec = recordingFetch();
    const rp = new OidcRelyingParty(settings(full), { fetch: rec.fetch });
    const { params, pending } = await signIn(rp, full);
    const id = await rp.complete(params, pending);
    expect(id).toMatchObject({ subject: 'alice', email: 'alice@example.test', name: 'Alice Liddell', groups: ['engineering', 'palisade-admins'] });
    expect(rec.paths).not.toContain('/me');
    expect(rec.paths).toContain('/token');
  });

  it('refuses a callback whose state does not match, or that belongs to another provider', async () => {
    const rp = new OidcRelyingParty(settings(op));
    const { params, pending } = await signIn(rp);
    const otherLast = pending.state.endsWith('A') ? 'B' : 'A'; // a different last character (random states end in 'A' 1 time in 64)
    await expectRefused(rp.complete({ ...params, state: `${pending.state.slice(0, -1)}${otherLast}` }, pending), 'PAL_AUTH_IDP_FAILED', 'state_mismatch');
    await expectRefused(rp.complete({ ...params, state: undefined }, pending), 'PAL_AUTH_IDP_FAILED', 'state_mismatch');
    await expectRefused(rp.complete(params, { ...pending, provider: 'other' }), 'PAL_AUTH_IDP_FAILED', 'state_mismatch');
    // None of those redeemed the code.
    expect((await rp.complete(params, pending)).subject).toBe('alice');
  });

  it('refuses an ID token whose nonce is not the pending one', async () => {
    const rp = new OidcRelyingParty(settings(op));
    const { params, pending } = await signIn(rp);
    await expectRefused(rp.complete(params, { ...pending, nonce: 'x'.repeat(43) }), 'PAL_AUTH_IDP_FAILED', 'nonce_mismatch');
  });

  it('refuses a replayed code with the provider\'s invalid_grant', async () => {
    const rp = new OidcRelyingParty(settings(op));
    const { params, pending } = await signIn(rp);
    await rp.complete(params, pending);
    const e = await expectRefused(rp.complete(params, pending), 'PAL_AUTH_IDP_FAILED', 'token_rejected');
    expect(e.extensions.error).toBe('invalid_grant');
  });

  it('lets the provider refuse a wrong PKCE verifier', async () => {
    const rp = new OidcRelyingParty(settings(op));
    const { params, pending } = await signIn(rp);
    const e = await expectRefused(rp.complete(params, { ...pending, code_verifier: 'y'.repeat(43) }), 'PAL_AUTH_IDP_FAILED', 'token_rejected');
    expect(e.extensions.error).toBe('invalid_grant');
  });

  it('refuses a pending sign-in older than maxPendingAgeSeconds before redeeming the code', async () => {
    let now = new Date();
    const rp = new OidcRelyingParty(settings(op), { clock: () => now, maxPendingAgeSeconds: 600 });
    const { params, pending } = await signIn(rp);
    now = new Date(pending.created_at + 601_000);
    await expectRefused(rp.complete(params, pending), 'PAL_AUTH_IDP_FAILED', 'expired');
    now = new Date(pending.created_at + 599_000);
    expect((await rp.complete(params, pending)).subject).toBe('alice');
  });

  it('reports a wrong client secret as the provider\'s invalid_client, without the secret or the code in the error', async () => {
    const rp = new OidcRelyingParty(settings(op, { client_secret: 'not-the-secret' }));
    const { params, pending } = await signIn(rp);
    const e = await expectRefused(rp.complete(params, pending), 'PAL_AUTH_IDP_FAILED', 'token_rejected');
    expect(e.extensions.error).toBe('invalid_client');
    const shown = JSON.stringify({ problem: e.toProblem('/cb', 'r1'), message: e.message });
    expect(shown).not.toContain('not-the-secret');
    expect(shown).not.toContain(params.code);
  });

  it('refuses a discovery document that names another issuer than the configured one (even by a trailing slash)', async () => {
    const rp = new OidcRelyingParty(settings(op, { issuer: `${op.issuer}/` }));
    await expectRefused(rp.authorizationRequest(), 'PAL_AUTH_IDP_FAILED', 'issuer_mismatch');
  });

  it('checks the RFC 9207 iss parameter: wrong or, since the provider advertises it, missing', async () => {
    const rp = new OidcRelyingParty(settings(op));
    const { params, pending } = await signIn(rp);
    await expectRefused(rp.complete({ ...params, iss: full.issuer }, pending), 'PAL_AUTH_IDP_FAILED', 'issuer_mismatch');
    await expectRefused(rp.complete({ ...params, iss: undefined }, pending), 'PAL_AUTH_IDP_FAILED', 'issuer_mismatch');
  });

  it('reports the provider\'s error=access_denied', async () => {
    const rp = new OidcRelyingParty(settings(op));
    const { params, pending } = await signIn(rp, op, { deny: true });
    expect(params.error).toBe('access_denied');
    const e = await expectRefused(rp.complete(params, pending), 'PAL_AUTH_IDP_FAILED', 'provider_error');
    expect(e.extensions.error).toBe('access_denied');
    // An error value outside RFC 6749's character set is not echoed.
    const odd = await expectRefused(rp.complete({ ...params, error: '<script>' + '"'.repeat(3) }, pending), 'PAL_AUTH_IDP_FAILED', 'provider_error');
    expect(odd.extensions.error).toBe('invalid');
  });

  describe('an ID token replaced on its way from the token endpoint', () => {
    async function resignedBy(kid: string | undefined): Promise<PalisadeError> {
      const attacker = await generateKeyPair('RS256');
      const rec = recordingFetch(async (url, res) => {
        if (url.pathname !== '/token' || !res.ok) return res;
        const body = (await res.json()) as { id_token: string };
        const header = decodeProtectedHeader(body.id_token);
        const forged = await new SignJWT(decodeJwt(body.id_token)).setProtectedHeader({ alg: 'RS256', kid: kid ?? header.kid }).sign(attacker.privateKey);
        return Response.json({ ...body, id_token: forged });
      });
      const rp = new OidcRelyingParty(settings(op), { fetch: rec.fetch });
      const { params, pending } = await signIn(rp);
      return rejection(rp.complete(params, pending));
    }

    it('is refused when signed by another key under the provider\'s kid', async () => {
      const e = await resignedBy(undefined);
      expect({ code: e.code, reason: e.extensions.reason }).toEqual({ code: 'PAL_AUTH_IDP_FAILED', reason: 'bad_signature' });
    });

    it('is refused when signed by a key the provider does not publish', async () => {
      const e = await resignedBy('attacker-key');
      expect({ code: e.code, reason: e.extensions.reason }).toEqual({ code: 'PAL_AUTH_IDP_FAILED', reason: 'unknown_key' });
    });
  });

  describe('an unreachable or misbehaving provider', () => {
    it('is PAL_AUTH_IDP_UNAVAILABLE when nothing listens at the issuer', async () => {
      const server = createServer();
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const port = (server.address() as AddressInfo).port;
      await new Promise<void>((r) => server.close(() => r()));
      const rp = new OidcRelyingParty(settings(op, { issuer: `http://127.0.0.1:${port}` }));
      await expectRefused(rp.authorizationRequest(), 'PAL_AUTH_IDP_UNAVAILABLE', 'discovery_unavailable');
    });

    it('is PAL_AUTH_IDP_UNAVAILABLE when the token endpoint fails or answers something that is not JSON', async () => {
      for (const [answer, reason] of [
        [new Response('upstream down', { status: 503 }), 'token_endpoint_error'],
        [new Response('<html>ok</html>', { status: 200 }), 'token_endpoint_invalid_response'],
        [Response.json({ access_token: 'a', token_type: 'Bearer' }), 'token_endpoint_invalid_response'],
      ] as const) {
        const rec = recordingFetch(async (url, res) => (url.pathname === '/token' ? answer : res));
        const rp = new OidcRelyingParty(settings(op), { fetch: rec.fetch });
        const { params, pending } = await signIn(rp);
        await expectRefused(rp.complete(params, pending), 'PAL_AUTH_IDP_UNAVAILABLE', reason);
      }
    });

    it('re-reads discovery after its TTL, and does not cache a failed one', async () => {
      let now = new Date();
      let fail = true;
      const rec = recordingFetch(async (url, res) => (fail && url.pathname.startsWith('/.well-known') ? new Response('nope', { status: 500 }) : res));
      const rp = new OidcRelyingParty(settings(op), { fetch: rec.fetch, clock: () => now });
      await expectRefused(rp.authorizationRequest(), 'PAL_AUTH_IDP_UNAVAILABLE', 'discovery_unavailable');
      fail = false;
      await rp.authorizationRequest();
      await rp.authorizationRequest();
      expect(rec.paths.filter((p) => p.startsWith('/.well-known'))).toHaveLength(2);
      now = new Date(now.getTime() + 3601_000);
      await rp.authorizationRequest();
      expect(rec.paths.filter((p) => p.startsWith('/.well-known'))).toHaveLength(3);
    });
  });

  it('requires https for the issuer and redirect_uri unless allowInsecureHttp', () => {
    const bad = (over: Partial<OidcProviderSettings>) => () => new OidcRelyingParty(settings(op, { allowInsecureHttp: false, ...over }));
    expect(bad({})).toThrow(PalisadeError);
    expect(bad({ issuer: 'https://idp.example', redirect_uri: 'http://palisade.example/cb' })).toThrow(/redirect_uri/);
    expect(bad({ issuer: 'https://idp.example?tenant=1' })).toThrow(/issuer/);
    expect(() => new OidcRelyingParty(settings(op, { allowInsecureHttp: false, issuer: 'https://idp.example', redirect_uri: 'https://palisade.example/cb' }))).not.toThrow();
  });
});

describe('validateIdToken', () => {
  const issuer = 'https://idp.example';
  const client_id = 'palisade';
  const nonce = 'n-0S6_WzA2Mj';
  const now = new Date('2026-11-23T12:00:00Z');
  const t = Math.floor(now.getTime() / 1000);
  let key: webcrypto.CryptoKey;
  let publicKey: webcrypto.CryptoKey;
  let jwk: JWK;
  let keys: ReturnType<typeof createLocalJWKSet>;

  beforeAll(async () => {
    ({ privateKey: key, publicKey } = await generateKeyPair('RS256', { extractable: true }));
    jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
    keys = createLocalJWKSet({ keys: [jwk] });
  });

  const claims = (over: JWTPayload = {}): JWTPayload => ({ iss: issuer, aud: client_id, sub: 'u1', nonce, iat: t - 5, exp: t + 300, ...over });
  const sign = (payload: JWTPayload, signer: webcrypto.CryptoKey | Uint8Array = key, header: Record<string, unknown> = {}) =>
    new SignJWT(payload).setProtectedHeader({ alg: 'RS256', kid: 'k1', ...header } as { alg: string }).sign(signer);
  const check = (token: string, algorithms = ['RS256']) => validateIdToken(token, keys, { issuer, client_id, nonce, algorithms, now });
  const refused = (token: Promise<string> | string, reason: string, algorithms?: string[]) =>
    expectRefused(Promise.resolve(token).then((tk) => check(tk, algorithms)), 'PAL_AUTH_IDP_FAILED', reason);

  it('accepts a well-formed token, and one expired within the 60 s tolerance', async () => {
    expect((await check(await sign(claims()))).sub).toBe('u1');
    expect((await check(await sign(claims({ exp: t - 30 })))).sub).toBe('u1');
    expect((await check(await sign(claims({ aud: [client_id, 'api'], azp: client_id })))).sub).toBe('u1');
  });

  it('refuses alg none', async () => {
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    await refused(`${b64({ alg: 'none' })}.${b64(claims())}.`, 'alg_not_allowed');
    await refused(`${b64({ alg: 'none' })}.${b64(claims())}.`, 'alg_not_allowed', ['RS256', 'none']);
  });

  it('refuses HS256 signed with the public key as the secret, even when the provider advertises HS256', async () => {
    const spki = Buffer.from(await exportSPKI(publicKey));
    await refused(sign(claims(), spki, { alg: 'HS256' }), 'alg_not_allowed');
    await refused(sign(claims(), spki, { alg: 'HS256' }), 'alg_not_allowed', ['RS256', 'HS256']);
    await refused(sign(claims(), new TextEncoder().encode(JSON.stringify(jwk)), { alg: 'HS256' }), 'alg_not_allowed', ['HS256']);
  });

  it('refuses an algorithm the provider does not advertise', async () => {
    await refused(sign(claims()), 'alg_not_allowed', ['ES256']);
  });

  it('refuses a wrong audience, a wrong issuer, and azp problems', async () => {
    await refused(sign(claims({ aud: 'someone-else' })), 'audience_mismatch');
    await refused(sign(claims({ iss: 'https://idp.example/' })), 'issuer_mismatch');
    await refused(sign(claims({ aud: [client_id, 'api'] })), 'azp_mismatch');
    await refused(sign(claims({ aud: [client_id, 'api'], azp: 'api' })), 'azp_mismatch');
    await refused(sign(claims({ azp: 'api' })), 'azp_mismatch');
  });

  it('refuses an expired token, one issued in the future, and one not yet valid', async () => {
    await refused(sign(claims({ exp: t - 61 })), 'id_token_expired');
    await refused(sign(claims({ iat: t + 120, exp: t + 600 })), 'id_token_not_yet_valid');
    await refused(sign(claims({ nbf: t + 120 })), 'id_token_not_yet_valid');
  });

  it('refuses a bad signature: another key under the same kid, or a flipped byte', async () => {
    const other = await generateKeyPair('RS256');
    await refused(sign(claims(), other.privateKey), 'bad_signature');
    const good = await sign(claims());
    const [h, p, s] = good.split('.') as [string, string, string];
    const sig = Buffer.from(s, 'base64url');
    sig[10] = sig[10]! ^ 1;
    await refused(`${h}.${p}.${sig.toString('base64url')}`, 'bad_signature');
    await refused(sign(claims(), other.privateKey, { kid: 'k2' }), 'unknown_key');
  });

  it('refuses a missing or different nonce, a missing subject, and garbage', async () => {
    const { nonce: _drop, ...noNonce } = claims();
    await refused(sign(noNonce), 'nonce_mismatch');
    await refused(sign(claims({ nonce: 'other' })), 'nonce_mismatch');
    const { sub: _sub, ...noSub } = claims();
    await refused(sign(noSub), 'malformed_id_token');
    await refused('not.a.jwt', 'malformed_id_token');
    await refused('', 'malformed_id_token');
  });
});

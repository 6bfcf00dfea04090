/**
 * Certificate-bound access tokens (RFC 8705) over real mTLS, on SQLite and PostgreSQL: client certificates issued by
 * the server's own PKI (SPIFFE X509-SVIDs), service identities authenticating to the token endpoint with them
 * (tls_client_auth) or with a secret while presenting one (client_secret_basic), tokens carrying
 * `cnf.x5t#S256` and refused on a request that does not present the same certificate, introspection reporting the
 * binding, and refusal of a foreign SPIFFE id and of a revoked certificate. Also: a client that resumes its TLS
 * session (as most HTTP clients do) must still authenticate by its certificate — this fails until
 * kernel/auth/client-certificates.ts can build the path without the intermediate (see the test's comment).
 */
import { createHash, X509Certificate } from 'node:crypto';
import { Agent, request } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dialects, OWNER_TOKEN, startServer, type TestServer } from '../../testing/harness.js';
import type { HttpsAnswer } from '../../testing/https-request.js';
import { makeCa, makeLeaf } from '../../testing/certs.js';

const RUNNER = 'spiffe://palisade.internal/ns/agents/sa/runner';
const owner = { authorization: `Bearer ${OWNER_TOKEN}` };

interface Issued {
  serial: string;
  certificate_pem: string;
  chain_pem: string;
  private_key_pem: string;
}
/** What a request presents in the TLS handshake: the chain (leaf, then the intermediate) and its key. */
type ClientCert = { cert: string; key: string };

interface RequestOptions {
  headers?: Record<string, string>;
  json?: unknown;
  form?: Record<string, string>;
  cert?: string;
  key?: string;
  /** Without one, each request is a new TLS connection with a full handshake (no keep-alive, no session resumption). */
  agent?: Agent;
}

/** An answer, and whether its connection resumed a TLS session (an abbreviated handshake). */
type Answer = HttpsAnswer & { resumed: boolean };

/**
 * Like testing/https-request.ts, but with control over connection reuse: a client certificate is seen by the server
 * only in the handshake, so which connection (new, kept alive, or resumed from a cached TLS session) matters here.
 */
function mtlsRequest(addr: string, ca: string, method: string, path: string, opts: RequestOptions = {}): Promise<Answer> {
  const i = addr.lastIndexOf(':');
  const headers: Record<string, string> = { ...opts.headers };
  let body: Buffer | undefined;
  if (opts.json !== undefined) {
    body = Buffer.from(JSON.stringify(opts.json));
    headers['content-type'] = 'application/json';
  } else if (opts.form) {
    body = Buffer.from(new URLSearchParams(opts.form).toString());
    headers['content-type'] = 'application/x-www-form-urlencoded';
  }
  const tlsClient = opts.cert ? { cert: opts.cert, key: opts.key } : {};
  return new Promise((resolve, reject) => {
    const req = request({ host: addr.slice(0, i), port: Number(addr.slice(i + 1)), method, path, ca, servername: 'localhost', headers, agent: opts.agent ?? false, ...tlsClient }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown = null;
        try {
          json = text ? JSON.parse(text) : null;
        } catch {
          // not JSON: the assertions read `text`
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json, resumed: (res.socket as TLSSocket).isSessionReused() });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** RFC 8705 §3.1: base64url SHA-256 of the certificate's DER. */
const thumbprint = (pem: string) => createHash('sha256').update(new X509Certificate(pem).raw).digest('base64url');
const payload = (jwt: string) => JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
const basicAuth = (id: string, secret: string) => ({ authorization: `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}` });
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

for (const d of dialects()) {
  describe.skipIf(!d.available)(`certificate-bound tokens over mTLS (${d.name})`, () => {
    let s: TestServer;
    const call = (method: string, path: string, opts: RequestOptions = {}): Promise<Answer> => mtlsRequest(s.addr, s.ca, method, path, opts);
    const asCert = (c: Issued): ClientCert => ({ cert: c.chain_pem, key: c.private_key_pem });
    const issue = async (service: string): Promise<Issued> => {
      const r = await call('POST', '/v1/pki/issue', { headers: owner, json: { service, namespace: 'agents', key_algorithm: 'ECDSA-P256' } });
      expect(r.status, r.text).toBe(201);
      return r.json as Issued;
    };
    const createService = async (name: string, spiffe_id?: string): Promise<string> => {
      const r = await call('POST', '/v1/services', { headers: owner, json: { name, roles: ['agent'], ...(spiffe_id ? { spiffe_id } : {}) } });
      expect(r.status, r.text).toBe(201);
      return (r.json as { id: string }).id;
    };
    const apiKey = async (serviceId: string): Promise<string> => {
      const r = await call('POST', `/v1/services/${serviceId}/api-keys`, { headers: owner, json: { name: 'oauth client' } });
      expect(r.status, r.text).toBe(201);
      return (r.json as { token: string }).token;
    };
    /** client_credentials by certificate alone (tls_client_auth): client_id in the form, no secret. */
    const tlsGrant = (clientId: string, cert?: ClientCert, scope = 'pki:ca:read') => call('POST', '/v1/oauth/token', { form: { grant_type: 'client_credentials', client_id: clientId, scope }, ...cert });
    const listCas = (token: string, cert?: ClientCert) => call('GET', '/v1/pki/cas', { headers: bearer(token), ...cert });
    const grants = async () => (await s.client.audit.query({ type: 'token.issue', limit: 500 })).events;

    let runnerId = '';
    let runner: Issued; // the certificate of spiffe://…/sa/runner
    let other: Issued; // a valid certificate of another service (spiffe://…/sa/other)

    beforeAll(async () => {
      s = await startServer(d.name, {
        mutate: (c) => {
          c.tls.client_auth.mode = 'optional';
          c.tls.client_auth.revocation_check_seconds = 1;
          c.tls.client_auth.identities = { 'spiffe://palisade.internal/ns/agents/sa/*': ['auth:self:read'] };
        },
      });
      const root = await call('POST', '/v1/pki/root', { headers: owner, json: {} });
      expect(root.status, root.text).toBe(201);
      runner = await issue('runner');
      other = await issue('other');
      runnerId = await createService('runner', RUNNER);
    });
    afterAll(async () => s?.close());

    it('the PKI issued SPIFFE X509-SVIDs, and discovery announces tls_client_auth and bound tokens', async () => {
      expect(new X509Certificate(runner.certificate_pem).subjectAltName).toContain(`URI:${RUNNER}`);
      const disco = (await call('GET', '/.well-known/openid-configuration')).json as Record<string, unknown>;
      expect(disco.token_endpoint_auth_methods_supported).toContain('tls_client_auth');
      expect(disco.tls_client_certificate_bound_access_tokens).toBe(true);
    });

    it('tls_client_auth: the certificate carrying the service SPIFFE id gets a token bound to it (cnf x5t#S256 of the leaf DER)', async () => {
      const t = await tlsGrant(runnerId, asCert(runner));
      expect(t.status, t.text).toBe(200);
      expect(t.json).toMatchObject({ token_type: 'Bearer', scope: 'pki:ca:read' });
      expect(t.headers['cache-control']).toBe('no-store');
      const claims = payload(t.json.access_token as string);
      expect(claims).toMatchObject({ sub: runnerId, client_id: runnerId, scope: 'pki:ca:read' });
      expect(claims.cnf).toEqual({ 'x5t#S256': thumbprint(runner.certificate_pem) });
      // The thumbprint is of the leaf alone, not of the intermediate the client also sent.
      expect((claims.cnf as Record<string, string>)['x5t#S256']).toMatch(/^[A-Za-z0-9_-]{43}$/);
      const issued = (await grants()).find((e) => e.resource?.id === claims.jti);
      expect(issued).toMatchObject({ outcome: 'success', details: { grant_type: 'client_credentials', client_id: runnerId, certificate_bound: true } });

      // Neither a secret nor a certificate: no client authentication at all.
      const none = await tlsGrant(runnerId);
      expect([none.status, none.json.error]).toEqual([401, 'invalid_client']);
      // The scope is still limited to what the service's roles grant.
      const tooMuch = await tlsGrant(runnerId, asCert(runner), 'kms:keys:destroy');
      expect([tooMuch.status, tooMuch.json.error]).toEqual([400, 'invalid_scope']);
    });

    it('the bound token is accepted with its certificate, refused (401 PAL_AUTH_TOKEN_INVALID) without one or with another valid certificate', async () => {
      const token = (await tlsGrant(runnerId, asCert(runner))).json.access_token as string;
      const withIts = await listCas(token, asCert(runner));
      expect(withIts.status, withIts.text).toBe(200);
      expect((withIts.json as { cas: unknown[] }).cas.length).toBe(2); // the root and its intermediate

      const without = await listCas(token);
      expect([without.status, without.json.code]).toEqual([401, 'PAL_AUTH_TOKEN_INVALID']);
      expect(without.json.detail).toMatch(/bound to a client certificate/);
      // Another certificate from the same PKI, valid and authenticating on its own, does not carry the token.
      const withOther = await listCas(token, asCert(other));
      expect([withOther.status, withOther.json.code]).toEqual([401, 'PAL_AUTH_TOKEN_INVALID']);
      const otherAlone = await call('GET', '/v1/auth/whoami', { ...asCert(other) });
      expect([otherAlone.status, otherAlone.json.principal_id]).toEqual([200, 'spiffe://palisade.internal/ns/agents/sa/other']);
      // Nor does a self-signed certificate (an attacker's own key) with the same SPIFFE id.
      const forged = await makeLeaf(await makeCa('Attacker CA'), { uris: [RUNNER], eku: ['clientAuth'] });
      const withForged = await listCas(token, forged);
      expect([withForged.status, withForged.json.code]).toEqual([401, 'PAL_AUTH_TOKEN_INVALID']);
      // The refusals are audited as failed authentications.
      const failed = (await s.client.audit.query({ type: 'auth.failed', limit: 500 })).events;
      expect(failed.filter((e) => e.error_code === 'PAL_AUTH_TOKEN_INVALID' && e.action === 'pki:ca:read').length).toBeGreaterThanOrEqual(3);
      // And the certificate still works with its token on a fresh request afterwards.
      expect((await listCas(token, asCert(runner))).status).toBe(200);
    });

    it('client_secret_basic with the certificate presented gives a bound token; without a certificate an unbound one', async () => {
      const secret = await apiKey(runnerId);
      const bound = await call('POST', '/v1/oauth/token', { headers: basicAuth(runnerId, secret), form: { grant_type: 'client_credentials', scope: 'pki:ca:read' }, ...asCert(runner) });
      expect(bound.status, bound.text).toBe(200);
      const boundToken = bound.json.access_token as string;
      expect(payload(boundToken).cnf).toEqual({ 'x5t#S256': thumbprint(runner.certificate_pem) });
      expect((await listCas(boundToken, asCert(runner))).status).toBe(200);
      expect((await listCas(boundToken)).json.code).toBe('PAL_AUTH_TOKEN_INVALID');
      expect((await listCas(boundToken, asCert(other))).json.code).toBe('PAL_AUTH_TOKEN_INVALID');

      const unbound = await call('POST', '/v1/oauth/token', { headers: basicAuth(runnerId, secret), form: { grant_type: 'client_credentials', scope: 'pki:ca:read' } });
      expect(unbound.status, unbound.text).toBe(200);
      const unboundToken = unbound.json.access_token as string;
      expect(payload(unboundToken)).not.toHaveProperty('cnf');
      expect((await listCas(unboundToken)).status).toBe(200);
      // An unbound token does not care which certificate (if any) the connection carries.
      expect((await listCas(unboundToken, asCert(other))).status).toBe(200);
      const audited = await grants();
      expect(audited.find((e) => e.resource?.id === payload(boundToken).jti)?.details).toMatchObject({ certificate_bound: true });
      expect(audited.find((e) => e.resource?.id === payload(unboundToken).jti)?.details).toMatchObject({ certificate_bound: false });
      // A secret-only client (no spiffe_id) is bound to whatever certificate it proved possession of in the handshake.
      const plain = await createService('secret-only');
      const plainSecret = await apiKey(plain);
      const t = await call('POST', '/v1/oauth/token', { headers: basicAuth(plain, plainSecret), form: { grant_type: 'client_credentials', scope: 'pki:ca:read' }, ...asCert(other) });
      expect(t.status, t.text).toBe(200);
      expect(payload(t.json.access_token as string).cnf).toEqual({ 'x5t#S256': thumbprint(other.certificate_pem) });
    });

    it('tls_client_auth refuses a certificate naming another SPIFFE id, a foreign one, and any certificate for a service without a spiffe_id', async () => {
      const wrongId = await tlsGrant(runnerId, asCert(other));
      expect([wrongId.status, wrongId.json.error]).toEqual([401, 'invalid_client']);
      expect(wrongId.headers['www-authenticate']).toMatch(/^Basic /);
      const forged = await makeLeaf(await makeCa('Attacker CA'), { uris: [RUNNER], eku: ['clientAuth'] });
      const untrusted = await tlsGrant(runnerId, forged);
      expect([untrusted.status, untrusted.json.error]).toEqual([401, 'invalid_client']);
      const noSpiffe = await createService('no-spiffe');
      const r = await tlsGrant(noSpiffe, asCert(runner));
      expect([r.status, r.json.error]).toEqual([401, 'invalid_client']);
      const unknown = await tlsGrant('svc_doesnotexist', asCert(runner));
      expect([unknown.status, unknown.json.error]).toEqual([401, 'invalid_client']);
      const denied = (await grants()).filter((e) => e.outcome === 'denied' && e.details?.client_id === runnerId);
      expect(denied.length).toBeGreaterThanOrEqual(2);
      expect(denied.every((e) => e.details?.error === 'invalid_client')).toBe(true);
    });

    it('a revoked certificate no longer authenticates the client at the token endpoint, and its bound token ends', async () => {
      const second = await issue('runner'); // a second certificate with the same SPIFFE id, revoked below
      expect(new X509Certificate(second.certificate_pem).subjectAltName).toContain(`URI:${RUNNER}`);
      const before = await tlsGrant(runnerId, asCert(second));
      expect(before.status, before.text).toBe(200);
      expect(payload(before.json.access_token as string).cnf).toEqual({ 'x5t#S256': thumbprint(second.certificate_pem) });
      expect((await listCas(before.json.access_token as string, asCert(second))).status).toBe(200);

      const revoked = await call('POST', `/v1/pki/certificates/${second.serial}/revoke`, { headers: owner, json: { reason: 'keyCompromise' } });
      expect(revoked.status, revoked.text).toBe(200);
      expect(revoked.json).toMatchObject({ serial: second.serial, revocation_reason: 'keyCompromise' });
      s.clock.advanceDays(2 / 86_400); // past revocation_check_seconds (1 s) on the server's clock: the revoked set is re-read

      const after = await tlsGrant(runnerId, asCert(second));
      expect([after.status, after.json.error]).toEqual([401, 'invalid_client']);
      // The token bound to it ends with it, though it has not expired.
      const bound = await listCas(before.json.access_token as string, asCert(second));
      expect([bound.status, bound.json.code]).toEqual([401, 'PAL_AUTH_TOKEN_INVALID']);
      expect(after.json.error_description).toMatch(/refused/);
      // The other, unrevoked certificate of the same service still works.
      expect((await tlsGrant(runnerId, asCert(runner))).status).toBe(200);
    });

    it('a connection that resumes a TLS session keeps the certificate: the bound token and tls_client_auth both work on it', async () => {
      // One client agent without keep-alive: each request is a new connection that resumes the agent's cached TLS
      // session (as curl, Go and most HTTP clients do). Node gives the server only the leaf on a resumed session, not
      // the intermediate the client sent in the full handshake: the authenticator completes the path with the PKI's
      // own intermediates, or every reconnect would be refused `untrusted_issuer`.
      const agent = new Agent({ keepAlive: false });
      try {
        const seen: string[] = [];
        let token = '';
        for (let i = 0; i < 3; i++) {
          const g = await call('POST', '/v1/oauth/token', { form: { grant_type: 'client_credentials', client_id: runnerId, scope: 'pki:ca:read' }, agent, ...asCert(runner) });
          if (g.status === 200) {
            token = g.json.access_token as string;
            expect(payload(token).cnf).toEqual({ 'x5t#S256': thumbprint(runner.certificate_pem) });
          }
          const r = token ? await call('GET', '/v1/pki/cas', { headers: bearer(token), agent, ...asCert(runner) }) : null;
          seen.push(`${g.resumed ? 'resumed' : 'full'} handshake: grant ${g.status}${g.status === 200 ? '' : ` ${g.text}`}; resource ${r?.status ?? '-'}`);
        }
        expect(seen).toEqual(['full handshake: grant 200; resource 200', 'resumed handshake: grant 200; resource 200', 'resumed handshake: grant 200; resource 200']);
      } finally {
        agent.destroy();
      }
    });

    it('without a token, the certificate of a registered service authenticates as that service, with its roles', async () => {
      const asService = await call('GET', '/v1/auth/whoami', asCert(runner));
      expect(asService.status, asService.text).toBe(200);
      expect(asService.json.principal_id).toBe(runnerId);
      expect((await call('GET', '/v1/pki/cas', asCert(runner))).status).toBe(200); // the agent role's pki:ca:read
      // A certificate of no registered service keeps its SPIFFE id and only the configured permissions.
      const plain = await call('GET', '/v1/auth/whoami', asCert(other));
      expect(plain.json.principal_id).toBe('spiffe://palisade.internal/ns/agents/sa/other');
      expect((await call('GET', '/v1/pki/cas', asCert(other))).status).toBe(403);
    });

    it('introspection reports cnf for a bound token, to the client (by certificate or secret) and to an administrator', async () => {
      const token = (await tlsGrant(runnerId, asCert(runner))).json.access_token as string;
      const expected = { active: true, token_type: 'Bearer', sub: runnerId, client_id: runnerId, scope: 'pki:ca:read', cnf: { 'x5t#S256': thumbprint(runner.certificate_pem) } };
      const byCert = await call('POST', '/v1/oauth/introspect', { form: { token, client_id: runnerId }, ...asCert(runner) });
      expect(byCert.status, byCert.text).toBe(200);
      expect(byCert.json).toMatchObject(expected);
      const secret = await apiKey(runnerId);
      const bySecret = await call('POST', '/v1/oauth/introspect', { headers: basicAuth(runnerId, secret), form: { token } });
      expect(bySecret.json).toMatchObject(expected);
      const byAdmin = await call('POST', '/v1/oauth/introspect', { headers: owner, form: { token } });
      expect(byAdmin.json).toMatchObject(expected);
      // An unbound token has no cnf.
      const unbound = (await call('POST', '/v1/oauth/token', { headers: basicAuth(runnerId, secret), form: { grant_type: 'client_credentials', scope: 'pki:ca:read' } })).json.access_token as string;
      const plain = await call('POST', '/v1/oauth/introspect', { headers: owner, form: { token: unbound } });
      expect(plain.json).toMatchObject({ active: true, client_id: runnerId });
      expect(plain.json).not.toHaveProperty('cnf');
      // A revoked bound token is inactive, and no longer reports its binding.
      expect((await call('POST', '/v1/oauth/revoke', { form: { token, client_id: runnerId }, ...asCert(runner) })).status).toBe(200);
      expect((await call('POST', '/v1/oauth/introspect', { headers: owner, form: { token } })).json).toEqual({ active: false });
      expect((await listCas(token, asCert(runner))).json.code).toBe('PAL_AUTH_TOKEN_INVALID');
    });
  });
}

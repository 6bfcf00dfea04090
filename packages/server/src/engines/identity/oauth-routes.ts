import { parse as parseQuery } from 'node:querystring';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { PalisadeError, constantTimeEqual } from '@palisade/core';
import type { ApiKeyService, Principal } from '../../kernel/auth/api-keys.js';
import type { ClientCertificateAuthenticator } from '../../kernel/auth/client-certificates.js';
import { peerCertificateChain } from '../../kernel/auth/client-certificates.js';
import { hasPermission } from '../../kernel/auth/permissions.js';
import type { AuditEventInput } from '../../kernel/audit/events.js';
import { toPalisadeError } from '../../http/problem.js';
import { JWT } from '../../kernel/pipeline.js';
import { transactWithEvents } from '../../kernel/op-context.js';
import { certificateThumbprint, type IdentityEngine } from './engine.js';
import { SESSION_CLIENT } from './tokens.js';
import type { AuthzEngine } from '../authz/engine.js';

/** An OAuth error response (RFC 6749 §5.2): `{error, error_description}`, 400 or 401. */
class OAuthError extends Error {
  constructor(
    readonly error: 'invalid_request' | 'invalid_client' | 'invalid_grant' | 'unauthorized_client' | 'unsupported_grant_type' | 'invalid_scope' | 'unsupported_token_type',
    message: string,
    readonly status = error === 'invalid_client' ? 401 : 400,
  ) {
    super(message);
  }
}

type Form = Record<string, string>;

/** The form body, with each parameter at most once (RFC 6749 §3.2: repeated parameters are an error). */
function form(req: FastifyRequest): Form {
  const body = (req.body ?? {}) as Record<string, string | string[]>;
  const out: Form = {};
  for (const [k, v] of Object.entries(body)) {
    if (Array.isArray(v)) throw new OAuthError('invalid_request', `parameter ${k} is repeated`);
    out[k] = v;
  }
  return out;
}

/**
 * The OAuth 2.0 token endpoint (client_credentials, refresh_token), introspection (RFC 7662), revocation (RFC 7009),
 * and discovery (RFC 8414 / OpenID) with the JWKS. Clients are service identities: client_id is the service id, the
 * secret one of its API keys (client_secret_basic or _post), or its certificate (RFC 8705 tls_client_auth, which also
 * binds the tokens to the certificate). Answers are OAuth's own error format.
 */
export function oauthRoutes(deps: { identity: IdentityEngine; apiKeys: ApiKeyService; authz: Pick<AuthzEngine, 'authorize'>; clientCertificates?: ClientCertificateAuthenticator | undefined }): FastifyPluginAsync {
  const { identity, apiKeys } = deps;
  const ledger = identity.deps.ledger;
  const storage = identity.deps.storage;

  /** Which service a request authenticates as, and whether by certificate. */
  async function authenticateClient(req: FastifyRequest, f: Form, publicClient = false): Promise<{ client_id: string; principal: Principal | null; cnf: string | null }> {
    const basic = /^Basic ([A-Za-z0-9+/=]+)$/.exec(req.headers.authorization ?? '');
    let id: string | undefined;
    let secret: string | undefined;
    if (basic?.[1]) {
      const decoded = Buffer.from(basic[1], 'base64').toString('utf8');
      const i = decoded.indexOf(':');
      if (i < 0) throw new OAuthError('invalid_client', 'malformed Basic credentials');
      id = decodeURIComponent(decoded.slice(0, i));
      secret = decodeURIComponent(decoded.slice(i + 1));
      if (f.client_id !== undefined && f.client_id !== id) throw new OAuthError('invalid_request', 'client_id differs from the Basic credentials');
    } else if (f.client_secret !== undefined) {
      id = f.client_id;
      secret = f.client_secret;
    } else id = f.client_id;
    if (!id) throw new OAuthError('invalid_client', 'client authentication is required');
    if (id === SESSION_CLIENT && secret === undefined) {
      if (!publicClient) throw new OAuthError('unauthorized_client', `${SESSION_CLIENT} is a public client: it may only refresh and revoke its own tokens`);
      return { client_id: id, principal: null, cnf: null };
    }
    const service = await storage.db.selectFrom('service_identities').selectAll().where('id', '=', id).executeTakeFirst();
    if (secret !== undefined) {
      let principal: Principal;
      try {
        principal = await apiKeys.authenticate(secret);
      } catch {
        throw new OAuthError('invalid_client', 'client authentication failed');
      }
      if (!service || service.active !== 1 || principal.principal_id !== id) throw new OAuthError('invalid_client', 'client authentication failed');
      const cert = certificateThumbprint(req);
      return { client_id: id, principal, cnf: cert };
    }
    const chain = peerCertificateChain(req.raw.socket);
    if (chain.length > 0 && deps.clientCertificates && service?.spiffe_id) {
      let principal: Principal;
      try {
        principal = await deps.clientCertificates.authenticate(chain);
      } catch {
        throw new OAuthError('invalid_client', 'the client certificate was refused');
      }
      if (service.active !== 1 || !constantTimeEqual(Buffer.from(principal.principal_id), Buffer.from(service.spiffe_id))) throw new OAuthError('invalid_client', 'the certificate does not belong to this client');
      return { client_id: id, principal, cnf: certificateThumbprint(req) };
    }
    throw new OAuthError('invalid_client', 'client authentication failed');
  }

  /** Commit `events` and the writes of `fn` together; errors are decided inside and thrown after the commit. */
  async function committed<T>(req: FastifyRequest, fn: (tx: typeof storage.db, events: AuditEventInput[]) => Promise<T | OAuthError>): Promise<T> {
    const out = await transactWithEvents(storage, ledger, async (tx, events) => {
      const r = await fn(tx, events);
      for (const e of events) e.request_id ??= req.id;
      return r;
    });
    if (out instanceof OAuthError) throw out;
    return out;
  }

  const actor = (req: FastifyRequest, principal: string | null) => ({ principal_id: principal, source_ip: req.ip });

  return async (app: FastifyInstance) => {
    app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 64 * 1024 }, (_req, body, done) => {
      done(null, parseQuery(body as string));
    });
    app.setErrorHandler((err, req, reply: FastifyReply) => {
      if (err instanceof OAuthError) {
        if (err.status === 401) void reply.header('www-authenticate', 'Basic realm="palisade"');
        return reply.code(err.status).header('cache-control', 'no-store').send({ error: err.error, error_description: err.message });
      }
      const pe = toPalisadeError(err);
      if (pe.status >= 500) req.log.error({ err }, 'oauth endpoint failed');
      return reply.code(pe.status).type('application/problem+json').send(pe.toProblem(req.url, req.id));
    });
    const pub = { permission: null };

    app.post('/v1/oauth/token', { config: pub, schema: { tags: ['oauth'], summary: 'OAuth 2.0 token endpoint: client_credentials and refresh_token grants' } }, async (req, reply) => {
      if (!req.headers['content-type']?.startsWith('application/x-www-form-urlencoded')) throw new OAuthError('invalid_request', 'the body must be application/x-www-form-urlencoded');
      const f = form(req);
      let client: Awaited<ReturnType<typeof authenticateClient>>;
      try {
        client = await authenticateClient(req, f, f.grant_type === 'refresh_token');
      } catch (e) {
        if (e instanceof OAuthError) {
          await committed(req, async (_tx, events) => {
            events.push({ type: 'token.issue', actor: actor(req, null), outcome: 'denied', resource: null, error_code: 'PAL_AUTH_INVALID', details: { grant_type: f.grant_type === 'refresh_token' ? 'refresh_token' : 'client_credentials', client_id: (f.client_id ?? '').slice(0, 64) || 'unknown', error: e.error } });
            return null;
          });
        }
        throw e;
      }
      void reply.header('cache-control', 'no-store').header('pragma', 'no-cache');
      if (f.grant_type === 'client_credentials') {
        if (!client.principal) throw new OAuthError('unauthorized_client', 'a public client has no client_credentials grant');
        const state = await identity.principals.get(client.client_id);
        const held = state?.permissions ?? [];
        const keyScope = client.principal.api_key_id ? client.principal.permissions : held;
        const wanted = f.scope ? f.scope.split(' ').filter(Boolean) : keyScope;
        const excess = wanted.filter((s) => !hasPermission(keyScope, s) || !hasPermission(held, s));
        if (excess.length > 0) throw new OAuthError('invalid_scope', `not granted to this client: ${excess.join(' ')}`);
        return committed(req, async (tx, events) => {
          const access = await identity.tokens.issueAccess(tx, { sub: client.client_id, client_id: client.client_id, scope: wanted, cnf: client.cnf });
          events.push({
            type: 'token.issue',
            actor: actor(req, client.client_id),
            outcome: 'success',
            resource: { type: 'token', id: access.claims.jti },
            details: { grant_type: 'client_credentials', client_id: client.client_id, scopes: wanted, expires_at: new Date(access.claims.exp * 1000).toISOString(), certificate_bound: client.cnf !== null },
          });
          return { access_token: access.token, token_type: 'Bearer', expires_in: access.claims.exp - access.claims.iat, scope: wanted.join(' ') };
        });
      }
      if (f.grant_type === 'refresh_token') {
        if (!f.refresh_token) throw new OAuthError('invalid_request', 'refresh_token is required');
        return committed(req, async (tx, events) => {
          const r = await identity.tokens.refresh(tx, f.refresh_token!, client.client_id, client.cnf);
          if (!r.ok) {
            events.push({ type: 'token.issue', actor: actor(req, r.principal_id ?? client.client_id), outcome: 'denied', resource: null, error_code: 'PAL_AUTH_TOKEN_INVALID', details: { grant_type: 'refresh_token', client_id: client.client_id, error: 'invalid_grant', reason: r.reason, ...(r.family_id ? { refresh_family: r.family_id } : {}) } });
            if (r.reason === 'reused') events.push({ type: 'token.revoke', actor: actor(req, null), outcome: 'success', resource: { type: 'token', id: r.family_id ?? null }, details: { token_type: 'refresh', reason: 'refresh_token_reuse' } });
            return new OAuthError('invalid_grant', `the refresh token is not valid (${r.reason === 'reused' ? 'reused: its family is revoked' : r.reason})`);
          }
          events.push({ type: 'token.issue', actor: actor(req, r.principal_id), outcome: 'success', resource: { type: 'token', id: r.jti }, details: { grant_type: 'refresh_token', client_id: client.client_id, scopes: r.tokens.scope.split(' ').filter(Boolean), refresh_family: r.family_id } });
          return r.tokens;
        });
      }
      throw new OAuthError('unsupported_grant_type', 'grant_type must be client_credentials or refresh_token');
    });

    /** Introspection and revocation callers: a client (Basic) or a principal with the oauth permission. */
    const caller = async (req: FastifyRequest, f: Form, permission: string): Promise<{ client_id: string | null }> => {
      const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
      if (bearer?.[1]) {
        const p = JWT.test(bearer[1]) ? await identity.accessTokenPrincipal(bearer[1], req).catch(() => null) : await apiKeys.authenticate(bearer[1]).catch(() => null);
        if (!p) throw new OAuthError('invalid_client', 'the bearer credential is not valid');
        const d = await deps.authz.authorize({ principal: p, source_ip: req.ip }, permission, { type: 'route', id: req.routeOptions.url ?? null });
        if (d.decision !== 'allow') throw new PalisadeError('PAL_FORBIDDEN', `${permission} is not allowed: ${d.reason}`, { extensions: { permission, reason: d.reason } });
        return { client_id: null };
      }
      return { client_id: (await authenticateClient(req, f, permission === 'oauth:tokens:revoke')).client_id };
    };

    app.post('/v1/oauth/introspect', { config: pub, schema: { tags: ['oauth'], summary: 'RFC 7662 token introspection (permission oauth:tokens:introspect, or the token\'s own client)' } }, async (req, reply) => {
      const f = form(req);
      if (!f.token) throw new OAuthError('invalid_request', 'token is required');
      const who = await caller(req, f, 'oauth:tokens:introspect');
      const out = await identity.tokens.introspect(storage.db, f.token);
      void reply.header('cache-control', 'no-store');
      // A client may only learn about its own tokens.
      if (who.client_id !== null && out.client_id !== who.client_id) return { active: false };
      return out;
    });

    app.post('/v1/oauth/revoke', { config: pub, schema: { tags: ['oauth'], summary: 'RFC 7009 token revocation' } }, async (req, reply) => {
      const f = form(req);
      if (!f.token) throw new OAuthError('invalid_request', 'token is required');
      const who = await caller(req, f, 'oauth:tokens:revoke');
      const target = await identity.tokens.identify(f.token, who.client_id);
      if (target) {
        await committed(req, async (tx, events) => {
          await identity.tokens.revoke(tx, target);
          events.push({ type: 'token.revoke', actor: actor(req, who.client_id), outcome: 'success', resource: { type: 'token', id: target.kind === 'access' ? target.jti : target.family_id }, details: { token_type: target.kind, reason: 'requested' } });
          return null;
        });
      }
      return reply.code(200).send();
    });

    app.get('/.well-known/jwks.json', { config: pub, schema: { tags: ['oauth'], summary: 'Public keys of access tokens' } }, async (_req, reply) => {
      void reply.header('cache-control', 'public, max-age=300');
      return identity.tokens.jwks();
    });
    const discovery = () => {
      const base = identity.publicUrl;
      return {
        issuer: base,
        jwks_uri: `${base}/.well-known/jwks.json`,
        token_endpoint: `${base}/v1/oauth/token`,
        introspection_endpoint: `${base}/v1/oauth/introspect`,
        revocation_endpoint: `${base}/v1/oauth/revoke`,
        grant_types_supported: ['client_credentials', 'refresh_token'],
        token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'tls_client_auth'],
        tls_client_certificate_bound_access_tokens: true,
        response_types_supported: ['code'],
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: [identity.deps.config.tokens.algorithm],
        token_endpoint_auth_signing_alg_values_supported: [identity.deps.config.tokens.algorithm],
        scopes_supported: [],
      };
    };
    app.get('/.well-known/openid-configuration', { config: pub }, async () => discovery());
    app.get('/.well-known/oauth-authorization-server', { config: pub }, async () => discovery());
  };
}

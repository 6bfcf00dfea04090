import { readFileSync } from 'node:fs';
import { parse as parseQuery } from 'node:querystring';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { PalisadeError } from '@palisade/core';
import { toPalisadeError } from '../../http/problem.js';
import type { IdentityEngine } from './engine.js';
import { clientOf } from './engine.js';
import type { Client } from './login.js';
import { setSessionCookie } from './routes.js';
import { OidcRelyingParty, type OidcPending } from './oidc-rp.js';
import { SamlServiceProvider, type SamlPending } from './saml-sp.js';
import type { IdentityConfig } from './config.js';
import { completeFederatedSignIn, DatabaseSamlReplayCache, loginEvent, type FederatedIdentity, type FederationKind } from './federation.js';

const tags = ['identity'];
const PENDING_SECONDS = 600;
const DEFAULT_NEXT = '/account/security';
const NAMEID_TRANSIENT = 'urn:oasis:names:tc:SAML:2.0:nameid-format:transient';

type OidcConfig = IdentityConfig['oidc'][string];
type SamlConfig = IdentityConfig['saml'][string];

interface Pending<P> {
  pending: P;
  next: string;
}

/** A same-origin path to land on after sign-in: absolute path only, no scheme-relative or backslash tricks. */
export function safeNext(next: unknown, publicUrl: string): string {
  if (typeof next !== 'string' || next.length === 0 || next.length > 1024) return DEFAULT_NEXT;
  // eslint-disable-next-line no-control-regex -- control characters are refused
  if (!next.startsWith('/') || next.startsWith('//') || next.includes('\\') || /[\x00-\x1f\x7f]/.test(next)) return DEFAULT_NEXT;
  let url: URL;
  try {
    url = new URL(next, publicUrl);
  } catch {
    return DEFAULT_NEXT;
  }
  if (url.origin !== new URL(publicUrl).origin) return DEFAULT_NEXT;
  return url.pathname + url.search + url.hash;
}

/** Query parameters as single strings; repeated ones are dropped (the protocol checks then refuse the callback). */
function singleStrings(q: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (typeof q === 'object' && q !== null) for (const [k, v] of Object.entries(q)) if (typeof v === 'string') out[k] = v;
  return out;
}

/**
 * OIDC and SAML sign-in: begin at the provider, come back to the callback / ACS, provision just in time. The routes
 * are public and audit every attempt themselves (auth.login.oidc / auth.login.saml, denied with the failed check).
 */
export function federationRoutes(identity: IdentityEngine, clock: () => Date): FastifyPluginAsync {
  const config = () => identity.deps.config;
  const base = () => identity.publicUrl.replace(/\/+$/, '');
  const oidcCache = new Map<string, { cfg: OidcConfig; url: string; rp: OidcRelyingParty }>();
  const samlCache = new Map<string, { cfg: SamlConfig; url: string; sp: SamlServiceProvider }>();
  const replay = new DatabaseSamlReplayCache(identity, clock);

  function oidcConfig(name: string): OidcConfig {
    const cfg = Object.hasOwn(config().oidc, name) ? config().oidc[name] : undefined;
    if (!cfg) throw new PalisadeError('PAL_AUTH_IDP_NOT_FOUND', `no OIDC provider named ${name}`);
    return cfg;
  }

  function samlConfig(name: string): SamlConfig {
    const cfg = Object.hasOwn(config().saml, name) ? config().saml[name] : undefined;
    if (!cfg) throw new PalisadeError('PAL_AUTH_IDP_NOT_FOUND', `no SAML provider named ${name}`);
    return cfg;
  }

  /** Built on first use, rebuilt when its configuration (or the public URL) changes. */
  function relyingParty(name: string): { cfg: OidcConfig; rp: OidcRelyingParty } {
    const cfg = oidcConfig(name);
    const hit = oidcCache.get(name);
    if (hit && hit.cfg === cfg && hit.url === base()) return hit;
    const rp = new OidcRelyingParty(
      {
        name,
        issuer: cfg.issuer,
        client_id: cfg.client_id,
        ...(cfg.client_secret !== undefined ? { client_secret: cfg.client_secret } : {}),
        redirect_uri: `${base()}/v1/auth/oidc/${name}/callback`,
        scopes: cfg.scopes,
        groups_claim: cfg.groups_claim,
        allowInsecureHttp: cfg.allow_insecure_http,
      },
      { clock, maxPendingAgeSeconds: PENDING_SECONDS },
    );
    const entry = { cfg, url: base(), rp };
    oidcCache.set(name, entry);
    return entry;
  }

  function serviceProvider(name: string): { cfg: SamlConfig; sp: SamlServiceProvider } {
    const cfg = samlConfig(name);
    const hit = samlCache.get(name);
    if (hit && hit.cfg === cfg && hit.url === base()) return hit;
    const sp = new SamlServiceProvider(
      {
        name,
        idp_entity_id: cfg.idp_entity_id,
        idp_sso_url: cfg.idp_sso_url,
        idp_certificates: cfg.idp_certificates,
        sp_entity_id: `${base()}/v1/auth/saml/${name}/metadata`,
        acs_url: `${base()}/v1/auth/saml/${name}/acs`,
        ...(cfg.sp_decryption_key_file ? { sp_decryption_key: readFileSync(cfg.sp_decryption_key_file, 'utf8') } : {}),
        ...(cfg.sp_certificate_file ? { sp_certificate: readFileSync(cfg.sp_certificate_file, 'utf8') } : {}),
        allow_idp_initiated: cfg.allow_idp_initiated,
        groups_attribute: cfg.groups_attribute,
        ...(cfg.email_attribute ? { email_attribute: cfg.email_attribute } : {}),
      },
      { clock, replay },
    );
    const entry = { cfg, url: base(), sp };
    samlCache.set(name, entry);
    return entry;
  }

  /** Record a refused attempt (before any account is known) in its own transaction, then throw. */
  async function deny(client: Client, kind: FederationKind, provider: string, e: unknown, extra: { issuer?: string; idp_initiated?: boolean } = {}): Promise<never> {
    const pe = toPalisadeError(e);
    const outcome = pe.status >= 500 ? 'failure' : 'denied';
    await identity.deps.storage.transact((tx) => identity.deps.ledger.append(tx, loginEvent(client, kind, provider, { outcome, user: null, error: pe, ...extra })));
    throw pe;
  }

  /** Provision / update the account and start the session; the cookie and the redirect on success. */
  async function finish(reply: FastifyReply, client: Client, id: FederatedIdentity, policy: { role_mapping: Record<string, string[]>; default_roles: string[]; jit_provisioning: boolean }, next: string) {
    let r: Awaited<ReturnType<typeof completeFederatedSignIn>>;
    try {
      r = await completeFederatedSignIn(identity, client, id, policy);
    } catch (e) {
      // Rolled back (a username race, a database failure): recorded on its own.
      return deny(client, id.kind, id.provider, e, { ...(id.issuer ? { issuer: id.issuer } : {}), ...(id.idp_initiated !== undefined ? { idp_initiated: id.idp_initiated } : {}) });
    }
    if (!r.ok) throw r.error; // committed with its audit event
    setSessionCookie(reply, r.session_id, r.expires_at, clock());
    void reply.header('cache-control', 'no-store');
    // Not a 302: a redirect chain that began at the IdP is cross-site, and the browser would not send the new
    // SameSite=Strict cookie on it. A page of our own that moves on is a same-site navigation, so the cookie goes.
    const href = next.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
    return reply
      .code(200)
      .type('text/html; charset=utf-8')
      .send(`<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=${href}"><title>Signed in</title></head><body><p>Signed in. <a href="${href}">Continue</a></p></body></html>`);
  }

  return async (app: FastifyInstance) => {
    app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 1024 * 1024 + 8 * 1024 }, (_req, body, done) => {
      done(null, parseQuery(body as string));
    });
    const pub = { permission: null };

    app.get('/auth/providers', { schema: { tags, summary: 'The configured OIDC and SAML identity providers, with their sign-in URLs' }, config: pub }, async () => {
      const c = config();
      return {
        providers: [
          ...Object.keys(c.oidc).map((name) => ({ name, kind: 'oidc' as const, login_url: `/v1/auth/oidc/${name}/login` })),
          ...Object.keys(c.saml).map((name) => ({ name, kind: 'saml' as const, login_url: `/v1/auth/saml/${name}/login` })),
        ],
      };
    });

    // ------------------------------------------------------------------------------------------ OIDC
    app.get<{ Params: { provider: string }; Querystring: Record<string, unknown> }>(
      '/auth/oidc/:provider/login',
      { schema: { tags, summary: 'Start an OpenID Connect sign-in: redirects to the provider' }, config: pub },
      async (req, reply) => {
        const name = req.params.provider;
        const { rp } = relyingParty(name);
        let started: Awaited<ReturnType<OidcRelyingParty['authorizationRequest']>>;
        try {
          started = await rp.authorizationRequest();
        } catch (e) {
          return deny(clientOf(req), 'oidc', name, e);
        }
        const record: Pending<OidcPending> = { pending: started.pending, next: safeNext(singleStrings(req.query).next, identity.publicUrl) };
        await identity.deps.storage.transact((tx) => identity.challenges.create(tx, 'oidc', null, record, PENDING_SECONDS, started.pending.state));
        void reply.header('cache-control', 'no-store');
        return reply.redirect(started.url, 302);
      },
    );

    app.get<{ Params: { provider: string }; Querystring: Record<string, unknown> }>(
      '/auth/oidc/:provider/callback',
      { schema: { tags, summary: 'OpenID Connect redirect URI: completes the sign-in and sets the session cookie' }, config: pub },
      async (req, reply) => {
        const name = req.params.provider;
        const { cfg, rp } = relyingParty(name);
        const client = clientOf(req);
        const params = singleStrings(req.query);
        let result: { identity: Awaited<ReturnType<OidcRelyingParty['complete']>>; next: string };
        try {
          // Single use, whatever the outcome: the record is deleted before the code is redeemed.
          const taken = params.state ? await identity.challenges.take<Pending<OidcPending>>(identity.deps.storage.db, 'oidc', params.state) : null;
          if (!taken) throw new PalisadeError('PAL_AUTH_IDP_FAILED', 'the callback does not belong to a sign-in in progress (unknown, used or expired state)', { extensions: { reason: 'state_unknown' } });
          result = { identity: await rp.complete(params, taken.data.pending), next: taken.data.next };
        } catch (e) {
          return deny(client, 'oidc', name, e, { issuer: cfg.issuer });
        }
        const o = result.identity;
        return finish(
          reply,
          client,
          { kind: 'oidc', provider: name, subject: o.subject, issuer: o.issuer, email: o.email, email_verified: o.email_verified, display_name: o.name, groups: o.groups },
          cfg,
          result.next,
        );
      },
    );

    // ------------------------------------------------------------------------------------------ SAML
    app.get<{ Params: { provider: string } }>(
      '/auth/saml/:provider/metadata',
      { schema: { tags, summary: 'SAML 2.0 service provider metadata for this provider (entity id, ACS, encryption key)' }, config: pub },
      async (req, reply) => {
        const { sp } = serviceProvider(req.params.provider);
        return reply.type('application/samlmetadata+xml').send(sp.metadata());
      },
    );

    app.get<{ Params: { provider: string }; Querystring: Record<string, unknown> }>(
      '/auth/saml/:provider/login',
      { schema: { tags, summary: 'Start a SAML sign-in (HTTP-Redirect binding): redirects to the identity provider' }, config: pub },
      async (req, reply) => {
        const { sp } = serviceProvider(req.params.provider);
        const started = await sp.authorizationRequest();
        const record: Pending<SamlPending> = { pending: started.pending, next: safeNext(singleStrings(req.query).next, identity.publicUrl) };
        await identity.deps.storage.transact((tx) => identity.challenges.create(tx, 'saml', null, record, PENDING_SECONDS, `request:${started.pending.relay_state}`));
        void reply.header('cache-control', 'no-store');
        return reply.redirect(started.url, 302);
      },
    );

    app.post<{ Params: { provider: string } }>(
      '/auth/saml/:provider/acs',
      { schema: { tags, summary: 'SAML assertion consumer service (HTTP-POST binding): completes the sign-in and sets the session cookie' }, config: pub },
      async (req: FastifyRequest<{ Params: { provider: string } }>, reply) => {
        const name = req.params.provider;
        const { cfg, sp } = serviceProvider(name);
        const client = clientOf(req);
        const body = singleStrings(req.body);
        let idpInitiated = false;
        let result: { identity: Awaited<ReturnType<SamlServiceProvider['complete']>>; next: string };
        try {
          if (!req.headers['content-type']?.startsWith('application/x-www-form-urlencoded')) {
            throw new PalisadeError('PAL_AUTH_IDP_FAILED', 'the SAML response must be posted as application/x-www-form-urlencoded', { extensions: { reason: 'malformed' } });
          }
          const relay = body.RelayState;
          const taken = relay ? await identity.challenges.take<Pending<SamlPending>>(identity.deps.storage.db, 'saml', `request:${relay}`) : null;
          if (relay && !taken && !cfg.allow_idp_initiated) {
            throw new PalisadeError('PAL_AUTH_IDP_FAILED', 'the RelayState does not belong to a sign-in in progress (unknown, used or expired)', { extensions: { reason: 'relay_state_mismatch' } });
          }
          idpInitiated = taken === null;
          const { RelayState: _ignored, ...unsolicited } = body;
          const out = await sp.complete(taken ? body : unsolicited, taken ? taken.data.pending : null);
          if (out.name_id_format === NAMEID_TRANSIENT) {
            throw new PalisadeError('PAL_AUTH_IDP_FAILED', 'the identity provider sent a transient NameID, which cannot identify an account; configure a persistent or email NameID', { extensions: { reason: 'transient_name_id' } });
          }
          result = { identity: out, next: taken ? taken.data.next : DEFAULT_NEXT };
        } catch (e) {
          return deny(client, 'saml', name, e, { idp_initiated: idpInitiated });
        }
        const s = result.identity;
        const displayName = s.attributes.displayName?.[0] ?? s.attributes.name?.[0] ?? s.attributes['http://schemas.microsoft.com/identity/claims/displayname']?.[0] ?? null;
        return finish(
          reply,
          client,
          { kind: 'saml', provider: name, subject: s.name_id, issuer: s.issuer, email: s.email, email_verified: s.email !== null, display_name: displayName, groups: s.groups, idp_initiated: idpInitiated },
          cfg,
          result.next,
        );
      },
    );
  };
}

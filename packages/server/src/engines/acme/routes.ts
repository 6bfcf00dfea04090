/**
 * The ACME server (RFC 8555) under /acme. Requests are JWS-signed (jws.ts), checked in a preHandler (url, nonce,
 * account, signature) before the handler's transaction, so a failing request still uses up its nonce. Every
 * answer carries a fresh Replay-Nonce and `Cache-Control: no-store`; errors are ACME problem documents.
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { PalisadeError } from '@palisade/core';
import { toPalisadeError } from '../../http/problem.js';
import { opContext } from '../../kernel/op-context.js';
import type { Tx } from '../../storage/database.js';
import { accountView, type Account } from './accounts.js';
import { RETRY_AFTER_SECONDS } from './ari.js';
import type { AcmeEngine } from './engine.js';
import { parseJws, payloadOf, thumbprint, verifySignature, type ParsedJws, type PublicJwk } from './jws.js';
import { challengeView } from './orders.js';
import { acmeError, toAcmeProblem } from './problem.js';
import { acmeUrls, type AcmeUrls } from './urls.js';

/** What the preHandler established about a signed request. */
export interface AcmeRequest {
  jws: ParsedJws;
  payload: Record<string, unknown> | null;
  jwk: PublicJwk;
  /** The signing account (kid); null when signed with a jwk. */
  account: Account | null;
  urls: AcmeUrls;
}

declare module 'fastify' {
  interface FastifyRequest {
    acme: AcmeRequest | null;
  }
}

type KeyKind = 'kid' | 'jwk' | 'either';
const BODY_LIMIT = 256 * 1024;

function acmeOf(req: FastifyRequest): AcmeRequest {
  if (!req.acme) throw new PalisadeError('PAL_INTERNAL', 'ACME route without JWS verification');
  return req.acme;
}

function accountOf(req: FastifyRequest): Account {
  const a = acmeOf(req).account;
  if (!a) throw acmeError('PAL_ACME_MALFORMED', 'this request must be signed by an account (kid)');
  return a;
}

const param = (req: FastifyRequest, name: string): string => (req.params as Record<string, string>)[name] ?? '';

export function acmeRoutes(engine: AcmeEngine): FastifyPluginAsync {
  const { accounts, orders, certificates, nonces, validator, deps } = engine;
  const base = (req: FastifyRequest) => deps.config.base_url ?? `${req.protocol}://${req.host}`;
  const urlsOf = (req: FastifyRequest) => acmeUrls(base(req));
  /** An audited write inside a route that is otherwise a read (POST-as-GET): the pipeline's transaction and event. */
  const audited = <T>(req: FastifyRequest, type: string, fn: (tx: Tx) => Promise<T>): Promise<T> => req.audited(type, () => fn(req.tx as Tx));

  /** The JWS checks every POST needs, in order: form, url, nonce, key (kid → account, or jwk), signature. */
  const verify = (kind: KeyKind) => async (req: FastifyRequest) => {
    const urls = urlsOf(req);
    const jws = parseJws(req.body);
    if (jws.header.url !== base(req) + req.url) throw acmeError('PAL_ACME_UNAUTHORIZED', `the JWS url ${JSON.stringify(jws.header.url)} is not this request's URL`);
    if (!(await nonces.consume(jws.header.nonce ?? ''))) throw acmeError('PAL_ACME_BAD_NONCE', 'the nonce is unknown, expired or used; use the Replay-Nonce of this answer');
    let account: Account | null = null;
    let jwk: PublicJwk;
    if (jws.header.kid !== undefined) {
      if (kind === 'jwk') throw acmeError('PAL_ACME_MALFORMED', 'this request must carry the account key as jwk, not a kid');
      account = await accounts.byKid(deps.storage.db, jws.header.kid, urls);
      jwk = account.jwk;
    } else if (jws.header.jwk !== undefined) {
      if (kind === 'kid') throw acmeError('PAL_ACME_MALFORMED', 'this request must name its account with kid, not carry a jwk');
      jwk = jws.header.jwk;
    } else {
      throw acmeError('PAL_ACME_MALFORMED', 'the protected header needs a kid or a jwk');
    }
    verifySignature(jws, jwk);
    req.acme = { jws, payload: payloadOf(jws), jwk, account, urls };
    req.principal = { principal_id: account ? `acme:${account.id}` : 'acme:unregistered-key', api_key_id: `jwk:${thumbprint(jwk)}`, permissions: [] };
  };

  return async (app: FastifyInstance) => {
    app.decorateRequest('acme', null);
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('application/jose+json', { parseAs: 'string', bodyLimit: BODY_LIMIT }, (_req, body, done) => {
      try {
        done(null, JSON.parse(body as string));
      } catch {
        done(acmeError('PAL_ACME_MALFORMED', 'the body is not JSON'), undefined);
      }
    });

    app.setErrorHandler((err, req, reply) => {
      const pe = toPalisadeError(err);
      if (pe.status >= 500) req.log.error({ err: pe.cause ?? err, code: pe.code }, 'ACME request failed');
      else req.log.info({ code: pe.code }, pe.message);
      const { location, retry_after } = pe.extensions as { location?: string; retry_after?: number };
      if (location) void reply.header('location', location);
      if (retry_after) void reply.header('retry-after', String(retry_after));
      const body = toAcmeProblem(pe);
      void reply.status(body.status).type('application/problem+json').send(body);
    });
    app.setNotFoundHandler((req, reply) => {
      void reply.status(404).type('application/problem+json').send(toAcmeProblem(acmeError('PAL_ACME_NOT_FOUND', `no ACME resource at ${req.method} ${req.url}`)));
    });
    app.addHook('onSend', async (req, reply, payload) => {
      try {
        void reply.header('replay-nonce', await nonces.issue());
      } catch (e) {
        req.log.error({ err: e }, 'could not issue an ACME nonce');
      }
      void reply.header('cache-control', 'no-store');
      if (!req.url.endsWith('/directory')) {
        const index = `<${urlsOf(req).directory}>;rel="index"`;
        const link = reply.getHeader('link');
        void reply.header('link', typeof link === 'string' ? `${link}, ${index}` : index);
      }
      return payload;
    });

    const signed = (kind: KeyKind) => ({ config: { permission: null }, preHandler: verify(kind) });
    const located = (reply: FastifyReply, url: string, code: number) => void reply.code(code).header('location', url);

    app.get('/directory', { config: { permission: null } }, async (req) => {
      const u = urlsOf(req);
      return {
        newNonce: u.newNonce,
        newAccount: u.newAccount,
        newOrder: u.newOrder,
        revokeCert: u.revokeCert,
        keyChange: u.keyChange,
        renewalInfo: u.renewalInfo,
        meta: { externalAccountRequired: deps.config.require_eab, ...(deps.config.terms_of_service ? { termsOfService: deps.config.terms_of_service } : {}) },
      };
    });

    app.head('/new-nonce', { config: { permission: null } }, async (_req, reply) => reply.code(200).send());
    app.get('/new-nonce', { config: { permission: null }, exposeHeadRoute: false }, async (_req, reply) => reply.code(204).send());

    app.post('/new-account', signed('jwk'), async (req, reply) => {
      const acme = acmeOf(req);
      const existing = await accounts.byKey(req.tx, acme.jwk);
      if (existing) {
        const { account } = await accounts.newAccount(req.tx, acme.jwk, acme.payload, acme.urls);
        located(reply, acme.urls.account(account.id), 200);
        return accountView(account, acme.urls);
      }
      const { account } = await audited(req, 'acme.account.create', async (tx) => {
        const out = await accounts.newAccount(tx, acme.jwk, acme.payload, acme.urls);
        req.principal = { principal_id: `acme:${out.account.id}`, api_key_id: `jwk:${out.account.thumbprint}`, permissions: [] };
        req.auditRecord.resource = { type: 'acme_account', id: out.account.id };
        req.auditRecord.details = { jwk_thumbprint: out.account.thumbprint, contacts: out.account.contact.length, eab_key_id: out.account.eab_key_id };
        return out;
      });
      located(reply, acme.urls.account(account.id), 201);
      return accountView(account, acme.urls);
    });

    app.post('/account/:id', signed('kid'), async (req) => {
      const acme = acmeOf(req);
      const account = accountOf(req);
      if (param(req, 'id') !== account.id) throw acmeError('PAL_ACME_UNAUTHORIZED', 'the kid is another account than the URL');
      const payload = acme.payload;
      if (payload === null || Object.keys(payload).length === 0) return accountView(account, acme.urls);
      const updated = await audited(req, 'acme.account.update', async (tx) => {
        req.auditRecord.resource = { type: 'acme_account', id: account.id };
        const next = await accounts.update(tx, account, payload);
        req.auditRecord.details = { status: next.status === 'deactivated' ? 'deactivated' : 'valid', contacts: next.contact.length };
        return next;
      });
      return accountView(updated, acme.urls);
    });

    app.post('/account/:id/orders', signed('kid'), async (req) => {
      const account = accountOf(req);
      if (param(req, 'id') !== account.id) throw acmeError('PAL_ACME_UNAUTHORIZED', 'the kid is another account than the URL');
      return orders.list(req.tx, account, acmeOf(req).urls);
    });

    app.post('/key-change', { ...signed('kid'), config: { permission: null, audit: 'acme.account.key_change' } }, async (req) => {
      const acme = acmeOf(req);
      const account = accountOf(req);
      req.auditRecord.resource = { type: 'acme_account', id: account.id };
      const change = await accounts.keyChange(req.tx, account, acme.payload, acme.jws.header.url ?? '', acme.urls);
      req.auditRecord.details = { old_jwk_thumbprint: change.old, new_jwk_thumbprint: change.next };
      return accountView(account, acme.urls);
    });

    app.post('/new-order', { ...signed('kid'), config: { permission: null, audit: 'acme.order.create' } }, async (req, reply) => {
      const acme = acmeOf(req);
      const account = accountOf(req);
      const { order, replaces } = await orders.create(req.tx, account, acme.payload);
      req.auditRecord.resource = { type: 'acme_order', id: order.id };
      req.auditRecord.details = { account_id: account.id, identifiers: (JSON.parse(order.identifiers) as Array<{ value: string }>).map((i) => i.value), ...(replaces ? { replaces } : {}) };
      located(reply, acme.urls.order(order.id), 201);
      return orders.view(req.tx, order, acme.urls);
    });

    app.post('/order/:id', signed('kid'), async (req) => {
      const acme = acmeOf(req);
      return orders.view(req.tx, await orders.load(req.tx, param(req, 'id'), accountOf(req)), acme.urls);
    });

    app.post('/order/:id/finalize', { ...signed('kid'), config: { permission: null, audit: 'acme.order.finalize' } }, async (req, reply) => {
      const acme = acmeOf(req);
      const account = accountOf(req);
      const order = await orders.load(req.tx, param(req, 'id'), account);
      req.auditRecord.resource = { type: 'acme_order', id: order.id };
      req.auditRecord.details = { account_id: account.id };
      const serial = await certificates.finalize(opContext(req), account, order, acme.payload);
      req.auditRecord.details = { account_id: account.id, certificate_serial: serial };
      located(reply, acme.urls.order(order.id), 200);
      return orders.view(req.tx, await orders.load(req.tx, order.id, account), acme.urls);
    });

    app.post('/authz/:id', signed('kid'), async (req) => {
      const acme = acmeOf(req);
      const account = accountOf(req);
      const authz = await orders.loadAuthz(req.tx, param(req, 'id'), account);
      const payload = acme.payload;
      if (payload === null) return orders.authzView(req.tx, authz, acme.urls);
      await audited(req, 'acme.authz.deactivate', async (tx) => {
        req.auditRecord.resource = { type: 'acme_authz', id: authz.id };
        req.auditRecord.details = { account_id: account.id, identifier: authz.identifier_value };
        await orders.deactivate(tx, authz, payload);
      });
      return orders.authzView(req.tx, await orders.loadAuthz(req.tx, authz.id, account), acme.urls);
    });

    app.post('/challenge/:id', signed('kid'), async (req, reply) => {
      const acme = acmeOf(req);
      const account = accountOf(req);
      const { challenge, authz } = await orders.loadChallenge(req.tx, param(req, 'id'), account);
      void reply.header('link', `<${acme.urls.authz(authz.id)}>;rel="up"`);
      if (acme.payload !== null) {
        const started = await audited(req, 'acme.challenge.respond', async (tx) => {
          req.auditRecord.resource = { type: 'acme_challenge', id: challenge.id };
          req.auditRecord.details = { account_id: account.id, identifier: authz.identifier_value, challenge_type: challenge.type };
          return orders.respond(tx, challenge, authz);
        });
        if (started) validator.start(challenge.id);
      }
      const { challenge: now } = await orders.loadChallenge(req.tx, challenge.id, account);
      return challengeView(now, acme.urls);
    });

    app.post('/cert/:serial', signed('kid'), async (req, reply) => {
      const pem = await certificates.download(req.tx, accountOf(req), param(req, 'serial'));
      return reply.type('application/pem-certificate-chain').send(pem);
    });

    app.post('/revoke-cert', { ...signed('either'), config: { permission: null, audit: 'acme.certificate.revoke' } }, async (req, reply) => {
      const acme = acmeOf(req);
      if (!acme.account) req.principal = { principal_id: 'acme:certificate-key', api_key_id: `jwk:${thumbprint(acme.jwk)}`, permissions: [] };
      const out = await certificates.revoke(opContext(req), acme.account ? { account: acme.account } : { jwk: acme.jwk }, acme.payload);
      req.auditRecord.resource = { type: 'certificate', id: out.serial };
      req.auditRecord.details = { serial: out.serial, reason: out.reason, authorized_by: out.authority };
      // An empty 200. Never reply.send() in an audited handler: the reply is a thenable the transaction would wait on.
      void reply.code(200);
      return '';
    });

    app.get('/renewal-info/:certid', { config: { permission: null } }, async (req, reply) => {
      const info = await certificates.renewalInfo(req.tx, param(req, 'certid'));
      void reply.header('retry-after', String(RETRY_AFTER_SECONDS));
      return info;
    });
  };
}

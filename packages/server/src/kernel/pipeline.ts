/**
 * The one request pipeline. Every route declares what it needs in its `config`; the security steps run here, in
 * this order, never in handlers:
 *
 *   | step            | where           | what                                                                   |
 *   |-----------------|-----------------|------------------------------------------------------------------------|
 *   | request id      | genReqId        | honour a well-formed X-Request-Id, else a UUID; echoed on the response  |
 *   | draining        | onRequest       | 503 PAL_SHUTTING_DOWN once SIGTERM arrived                               |
 *   | sealed          | onRequest       | routes not marked allowSealed answer 503 PAL_SEAL_SEALED while sealed   |
 *   | client cert     | onRequest       | no Authorization header + a TLS client certificate -> its SPIFFE id    |
 *   |                 |                 | principal (401 with the reason otherwise; failures audited)            |
 *   | authentication  | onRequest       | Authorization: Bearer <API key or access token (JWT)>, else the session |
 *   |                 |                 | cookie (same-origin writes only), else the client certificate; 401     |
 *   |                 |                 | otherwise (failures audited)                                            |
 *   | authorization   | onRequest       | the authorization engine decides the route's `engine:resource:action`  |
 *   |                 |                 | on its resource (config.resource) in the request's context: 403 with   |
 *   |                 |                 | the reason (audited), or 403 PAL_APPROVAL_REQUIRED with the approval   |
 *   |                 |                 | request filed; a `Palisade-Approval` header uses an approval once      |
 *   | body limit/type | content parser  | 10 MiB, JSON only (413 / 415 / 400)                                    |
 *   | validation      | schema (ajv)    | TypeBox schemas (400 PAL_VALIDATION_FAILED / PAL_BAD_BASE64)           |
 *   | audit + handler | onRoute wrapper | one transaction: handler's writes + its audit event; fail closed       |
 *   | failure audit   | onRoute wrapper | a failed audited request is recorded in its own transaction            |
 *   | after commit    | onRoute wrapper | effects that must follow the commit (e.g. sealing after its audit)     |
 *
 * While sealed nothing can be audited (the audit MAC key is behind the seal): refusals on the few routes that
 * work sealed (unseal, status, metrics) are logged instead.
 *   | metrics         | onResponse      | http_requests_total, http_request_duration_seconds                     |
 */
import { PalisadeError, type Approval } from '@palisade/core';
import type { Decision, RequestFacts, ResourceAttrs } from './auth/decision.js';
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import type { AuditLedger } from './audit/ledger.js';
import type { AuditEventInput } from './audit/events.js';
import { hasPermission } from './auth/permissions.js';
import type { ApiKeyService, Principal } from './auth/api-keys.js';
import { peerCertificateChain, type ClientCertificateAuthenticator } from './auth/client-certificates.js';
import type { Executor, Storage } from '../storage/database.js';
import type { Seal } from './seal/seal.js';
import type { HttpMetrics } from '../metrics/http.js';
import { toPalisadeError } from '../http/problem.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Required permission; `null` makes the route public (health, discovery). */
    permission?: string | null;
    /** Audit event type for this route; set on every state-changing route. */
    audit?: string;
    /**
     * The service audits this route itself, because a refusal must still commit its writes (throttle counters of a
     * failed step-up) or because it writes only short-lived challenge state (WebAuthn options).
     */
    selfAudited?: boolean;
    /** Route works while sealed (health, readiness, metrics). */
    allowSealed?: boolean;
    /**
     * The resource the request acts on, with what policies match on (name, classification, organisation,
     * project); null when it does not exist (the handler answers 404). Default: the route itself.
     */
    resource?: (req: FastifyRequest) => Promise<ResourceAttrs | null>;
  }
  interface FastifyRequest {
    principal: Principal | null;
    /** The authorization decision (authenticated routes). */
    authz: Decision | null;
    /** The executor for this request: the audit transaction on audited routes, the database otherwise. */
    tx: Executor;
    /**
     * Run `fn` as an audited write of `type` (its writes on `req.tx` and the event in one transaction), for routes
     * that write only on some requests and so cannot name an audit type in their config.
     */
    audited<T>(type: string, fn: () => Promise<T>): Promise<T>;
    /** What the handler tells the audit event (resource, non-secret details). */
    auditRecord: Pick<AuditEventInput, 'resource' | 'details'> & {
      /** Whose personal data the event carries (a user id): the fields the catalogue marks personal are encrypted under it. */
      subject?: string;
      /** Further events (e.g. an automatic rotation) committed with the request's own. */
      extra: AuditEventInput[];
      /** Undo in-memory state that assumed the transaction would commit. */
      onRollback: Array<() => void>;
      /** Run once the transaction (and so the audit event) has committed. */
      afterCommit: Array<() => Promise<void>>;
      /** Run in the transaction after the handler, before its event is appended (using an approval once). */
      beforeCommit: Array<(tx: Executor) => Promise<void>>;
    };
  }
}

export interface PipelineDeps {
  storage: Storage;
  ledger: AuditLedger;
  apiKeys: Pick<ApiKeyService, 'authenticate'>;
  /** Sessions and access tokens (the identity engine). */
  identity?: {
    accessTokenPrincipal(token: string, req: FastifyRequest): Promise<Principal>;
    sessionPrincipal(id: string, req: FastifyRequest): Promise<Principal>;
    sessionCookie(req: FastifyRequest): string | null;
    /** A certificate's SPIFFE principal as the service identity registered with that id, if any. */
    certificatePrincipal(p: Principal): Promise<Principal>;
  };
  /** The authorization engine; without it (unit tests of the pipeline) a route's permission is checked alone. */
  authz?: {
    authorize(facts: RequestFacts, action: string, resource: ResourceAttrs): Promise<Decision>;
    requestPermit(db: Executor, principal_id: string, action: string, resource: ResourceAttrs, d: Decision): Promise<{ approval: Approval; created: boolean }>;
    consumePermit(db: Executor, approvalId: string, requestId: string): Promise<boolean>;
  };
  /** mTLS client authentication; absent when the listener asks for no client certificate (and under inject()). */
  clientCertificates?: ClientCertificateAuthenticator;
  seal: () => Seal;
  metrics: HttpMetrics;
  isDraining: () => boolean;
}

const BEARER = /^Bearer ([\x21-\x7e]{1,4096})$/;
/** A compact JWS (an access token); anything else is an API key (the owner's may have any shape). */
export const JWT = /^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

function actorOf(req: FastifyRequest): AuditEventInput['actor'] {
  return { principal_id: req.principal?.principal_id ?? null, api_key_id: req.principal?.api_key_id ?? null, source_ip: req.ip };
}

const APPROVAL_HEADER = 'palisade-approval';
const APPROVAL_ID = /^apr_[A-Za-z0-9]{1,60}$/;

function authzOf(d: Decision | null): Pick<AuditEventInput, 'authz'> {
  return d ? { authz: { decision: d.decision, reason: d.reason, by: d.by } } : {};
}

/** The route's decision: the authorization engine's, or (without one) the principal's permissions alone. */
async function decide(deps: PipelineDeps, req: FastifyRequest, permission: string, resource: ResourceAttrs): Promise<Decision> {
  const principal = req.principal!;
  if (!deps.authz) {
    const ok = hasPermission(principal.permissions, permission);
    return { decision: ok ? 'allow' : 'deny', reason: ok ? `the credential carries ${permission}` : `no role, binding or rule grants ${permission}`, by: [] };
  }
  const header = req.headers[APPROVAL_HEADER];
  if (header !== undefined && (typeof header !== 'string' || !APPROVAL_ID.test(header))) throw new PalisadeError('PAL_APPROVAL_INVALID', `${APPROVAL_HEADER} must be one approval id (apr_…)`);
  return deps.authz.authorize({ principal, source_ip: req.ip, approval_id: header ?? null }, permission, resource);
}

export function installPipeline(app: FastifyInstance, deps: PipelineDeps): void {
  app.decorateRequest('principal', null);
  app.decorateRequest('authz', null);
  app.decorateRequest('tx', null as unknown as Executor);
  app.decorateRequest('auditRecord', null as unknown as FastifyRequest['auditRecord']);

  app.addHook('onRequest', async (req, reply) => {
    void reply.header('x-request-id', req.id);
    req.tx = deps.storage.db;
    req.auditRecord = { resource: null, details: {}, extra: [], onRollback: [], afterCommit: [], beforeCommit: [] };
    req.authz = null;
    const config = req.routeOptions.config;
    if (deps.isDraining()) throw new PalisadeError('PAL_SHUTTING_DOWN');
    const permission = config.permission;
    const state = deps.seal().state;
    if (!config.allowSealed && permission !== undefined) {
      if (state !== 'unsealed') throw new PalisadeError(state === 'uninitialized' ? 'PAL_SEAL_NOT_INITIALIZED' : 'PAL_SEAL_SEALED');
      const down = deps.seal().unavailable;
      if (down) throw new PalisadeError('PAL_SEAL_UNAVAILABLE', down);
    }
    if (permission === null || permission === undefined) {
      // undefined = no route matched (404 handler) or a public route
      return;
    }
    const header = req.headers.authorization;
    // An Authorization header wins over a session cookie, which wins over a client certificate.
    const session = header ? null : (deps.identity?.sessionCookie(req) ?? null);
    const certificates = header || session ? undefined : deps.clientCertificates;
    const chain = certificates ? peerCertificateChain(req.raw.socket) : [];
    if (!header && !session && chain.length === 0) throw new PalisadeError('PAL_AUTH_REQUIRED');
    try {
      if (session && deps.identity) req.principal = await deps.identity.sessionPrincipal(session, req);
      else if (certificates && chain.length > 0) {
        const p = await certificates.authenticate(chain);
        req.principal = deps.identity ? await deps.identity.certificatePrincipal(p) : p;
      }
      else {
        const m = BEARER.exec(header ?? '');
        if (!m?.[1]) throw new PalisadeError('PAL_AUTH_INVALID', 'Authorization must be `Bearer <API key or access token>`');
        req.principal = deps.identity && JWT.test(m[1]) ? await deps.identity.accessTokenPrincipal(m[1], req) : await deps.apiKeys.authenticate(m[1]);
      }
    } catch (e) {
      const pe = toPalisadeError(e);
      const details = chain.length > 0 ? { method: 'client_certificate', ...pe.extensions } : {};
      await auditOrFail(deps, req, { type: 'auth.failed', actor: actorOf(req), outcome: 'denied', request_id: req.id, action: permission, error_code: pe.code, details });
      throw pe;
    }
    const resource = (config.resource ? await config.resource(req) : null) ?? { type: 'route', id: req.routeOptions.url ?? null };
    const d = await decide(deps, req, permission, resource);
    req.authz = d;
    deps.metrics.decided(d.decision);
    const denied = (error_code: string): AuditEventInput => ({ type: 'authz.denied', actor: actorOf(req), outcome: 'denied', request_id: req.id, action: permission, error_code, resource: { type: resource.type, id: resource.id ?? resource.name ?? req.routeOptions.url ?? null }, ...authzOf(d) });
    if (d.decision === 'deny') {
      await auditOrFail(deps, req, denied('PAL_FORBIDDEN'));
      throw new PalisadeError('PAL_FORBIDDEN', `${permission} is not allowed: ${d.reason}`, { extensions: { permission, reason: d.reason } });
    }
    if (d.decision === 'approval_required') throw await fileApproval(deps, req, permission, resource, d, denied('PAL_APPROVAL_REQUIRED'));
    if (d.permit) await usePermit(deps, req, permission, d.permit, d);
  });

  app.addHook('onRoute', (route: RouteOptions) => {
    const type = route.config?.audit;
    if (!type) {
      const methods = ([] as string[]).concat(route.method);
      if (route.config?.permission && !route.config.selfAudited && methods.some((m) => m !== 'GET' && m !== 'HEAD')) {
        throw new Error(`route ${methods.join(',')} ${route.url} needs config.audit: every authenticated non-GET request is audited`);
      }
      return;
    }
    const inner = route.handler;
    route.handler = async function audited(this: FastifyInstance, req: FastifyRequest, reply: FastifyReply) {
      return runAudited(deps, req, type, route.config?.permission ?? null, async () => inner.call(this, req, reply));
    };
  });

  // For a route that only sometimes writes (ACME's POST-as-GET vs. an update), so it cannot be audited by its config.
  app.decorateRequest('audited', function <T>(this: FastifyRequest, type: string, fn: () => Promise<T>): Promise<T> {
    return runAudited(deps, this, type, this.routeOptions.config.permission ?? null, fn);
  });

  app.addHook('onResponse', async (req, reply) => {
    deps.metrics.observe(req.method, req.routeOptions.url ?? 'unmatched', reply.statusCode, reply.elapsedTime / 1000);
  });
}

/** File (or find) the approval request a `require_approval` rule asks for, with the refusal's event; the error to throw. */
async function fileApproval(deps: PipelineDeps, req: FastifyRequest, permission: string, resource: ResourceAttrs, d: Decision, refusal: AuditEventInput): Promise<PalisadeError> {
  const authz = deps.authz!;
  const approval = await deps.storage.transact(async (tx) => {
    const { approval: a, created } = await authz.requestPermit(tx, req.principal!.principal_id, permission, resource, d);
    await deps.ledger.append(tx, refusal);
    if (created) await deps.ledger.append(tx, { type: 'approval.request', actor: actorOf(req), outcome: 'success', request_id: req.id, action: permission, resource: { type: 'approval', id: a.id }, error_code: null, details: { action: a.action, target: a.resource } });
    return a;
  });
  return new PalisadeError('PAL_APPROVAL_REQUIRED', `${d.reason}; approval request ${approval.id} was filed: repeat the request with ${APPROVAL_HEADER}: ${approval.id} once it is approved`, {
    extensions: { approval_id: approval.id, expires_at: approval.expires_at, reason: d.reason },
  });
}

/**
 * Use an approval once: in the route's own transaction when it is audited (so a failed operation leaves it
 * unused), else on its own with an `approval.use` event. A concurrent second use fails the conditional update.
 */
async function usePermit(deps: PipelineDeps, req: FastifyRequest, permission: string, permit: string, d: Decision): Promise<void> {
  const authz = deps.authz!;
  const use = async (tx: Executor) => {
    if (!(await authz.consumePermit(tx, permit, req.id))) throw new PalisadeError('PAL_APPROVAL_INVALID', `approval ${permit} was used already`);
  };
  if (req.routeOptions.config.audit) {
    req.auditRecord.beforeCommit.push(use);
    return;
  }
  await deps.storage.transact(async (tx) => {
    await use(tx);
    await deps.ledger.append(tx, { type: 'approval.use', actor: actorOf(req), outcome: 'success', request_id: req.id, action: permission, resource: { type: 'approval', id: permit }, error_code: null, details: {}, ...authzOf(d) });
  });
}

/**
 * The handler's writes and its audit event (plus any extra ones) in one transaction, or neither; a failure is then
 * recorded on its own, and work that must follow the commit runs after it.
 */
async function runAudited<T>(deps: PipelineDeps, req: FastifyRequest, type: string, action: string | null, fn: () => Promise<T>): Promise<T> {
  const event = (outcome: AuditEventInput['outcome'], error_code?: string): AuditEventInput => ({
    type,
    actor: actorOf(req),
    outcome,
    request_id: req.id,
    action,
    resource: req.auditRecord.resource ?? null,
    error_code: error_code ?? null,
    details: req.auditRecord.details ?? {},
    ...authzOf(req.authz),
    ...(req.auditRecord.subject ? { subject: req.auditRecord.subject } : {}),
  });
  let result: T;
  try {
    result = await deps.storage.transact(async (tx) => {
      req.tx = tx;
      const out = await fn();
      for (const step of req.auditRecord.beforeCommit) await step(tx);
      await deps.ledger.append(tx, event('success'));
      for (const extra of req.auditRecord.extra) await deps.ledger.append(tx, extra);
      return out;
    });
  } catch (e) {
    req.tx = deps.storage.db;
    for (const undo of req.auditRecord.onRollback) undo();
    const pe = toPalisadeError(e);
    if (pe.code !== 'PAL_AUDIT_WRITE_FAILED') await auditOrFail(deps, req, event('failure', pe.code));
    throw pe;
  }
  req.tx = deps.storage.db;
  for (const after of req.auditRecord.afterCommit) await after();
  return result;
}

async function auditOrFail(deps: PipelineDeps, req: FastifyRequest, input: AuditEventInput): Promise<void> {
  if (deps.seal().state !== 'unsealed') {
    req.log.warn({ audit: input }, 'not audited: the seal is closed');
    return;
  }
  try {
    await deps.ledger.appendStandalone(input);
  } catch (e) {
    throw toPalisadeError(e).code === 'PAL_AUDIT_WRITE_FAILED' ? e : new PalisadeError('PAL_AUDIT_WRITE_FAILED', undefined, { cause: e });
  }
}

import { randomUUID } from 'node:crypto';
import type { ServerOptions as HttpsOptions } from 'node:https';
import Fastify, { type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { Problem } from '@palisade/core';
import type { Storage } from './storage/database.js';
import type { SealManager } from './kernel/seal/manager.js';
import type { AuditLedger } from './kernel/audit/ledger.js';
import type { ApiKeyService } from './kernel/auth/api-keys.js';
import { installPipeline } from './kernel/pipeline.js';
import { registerProblemHandlers } from './http/problem.js';
import { installSecurityHeaders } from './http/security-headers.js';
import type { ClientCertificateAuthenticator } from './kernel/auth/client-certificates.js';
import { systemRoutes } from './http/system-routes.js';
import { FORMATS } from './http/schemas.js';
import { httpMetrics } from './metrics/http.js';
import { kmsRoutes } from './engines/kms/routes.js';
import type { KmsService } from './engines/kms/service.js';
import type { KmsMetrics } from './engines/kms/metrics.js';
import { authRoutes } from './engines/auth/routes.js';
import { auditRoutes } from './engines/audit/routes.js';
import type { AuditLog } from './engines/audit/log.js';
import type { AuditRetention } from './kernel/audit/retention.js';
import { sysRoutes } from './engines/sys/routes.js';
import { approvalRoutes } from './engines/approvals/routes.js';
import { acmeRoutes } from './engines/acme/routes.js';
import { eabRoutes } from './engines/acme/eab-routes.js';
import type { AcmeEngine } from './engines/acme/engine.js';
import { pkiRoutes } from './engines/pki/routes.js';
import type { PkiService } from './engines/pki/service.js';
import type { ApprovalService } from './kernel/approvals/approvals.js';
import type { IdentityEngine } from './engines/identity/engine.js';
import type { AuthzEngine } from './engines/authz/engine.js';
import { authzRoutes } from './engines/authz/routes.js';
import { cookie, SESSION_COOKIE } from './engines/identity/engine.js';
import { identityAuthRoutes } from './engines/identity/routes.js';
import { identityAdminRoutes } from './engines/identity/admin-routes.js';
import { oauthRoutes } from './engines/identity/oauth-routes.js';
import { federationRoutes } from './engines/identity/federation-routes.js';
import { identityPages } from './engines/identity/pages.js';
import { scimRoutes } from './engines/scim/routes.js';
import { gatewayRoutes } from './engines/gateway/routes.js';
import type { SigningKeys } from './engines/gateway/signing-keys.js';

export interface AppDeps {
  storage: Storage;
  seal: SealManager;
  ledger: AuditLedger;
  auditLog: AuditLog;
  retention: AuditRetention;
  apiKeys: ApiKeyService;
  kms: KmsService;
  pki: PkiService;
  approvals: ApprovalService;
  identity: IdentityEngine;
  authz: AuthzEngine;
  /** Request-signing keys (the gateway verifies `Palisade-Signature` with them). */
  signingKeys: SigningKeys;
  kmsMetrics: KmsMetrics;
  registry: Registry;
  log: Logger;
  clock: () => Date;
  bodyLimit: number;
  metricsPublic: boolean;
  /** TLS options when serving (ListenerTls.serverOptions()); absent in tests that use inject(). */
  https?: HttpsOptions;
  /** mTLS client authentication, when the listener asks for client certificates. */
  clientCertificates?: ClientCertificateAuthenticator;
  isDraining?: () => boolean;
  /** The ACME server (/acme) and its EAB admin routes, when a CA backs it. */
  acme?: AcmeEngine;
}

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** The Fastify instance with every engine mounted. It never listens by itself: main.ts does, tests inject(). */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.log,
    bodyLimit: deps.bodyLimit,
    ...(deps.https ? { https: deps.https } : {}),
    genReqId: (req) => {
      const h = req.headers['x-request-id'];
      return typeof h === 'string' && REQUEST_ID.test(h) ? h : randomUUID();
    },
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', allErrors: false, formats: FORMATS } },
    serializerOpts: { ajv: { formats: FORMATS } }, // response schemas with anyOf compile an ajv of their own
  }) as unknown as FastifyInstance;

  app.removeContentTypeParser('text/plain');
  registerProblemHandlers(app);
  installSecurityHeaders(app);
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'Palisade API', version: '0.1.0', description: 'Keys, certificates, identities and a tamper-evident audit ledger for AI agent frameworks.' },
      components: {
        securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'an API key: `pal_...`' } },
        schemas: { Problem: Problem as never },
      },
    },
  });
  installPipeline(app, {
    storage: deps.storage,
    ledger: deps.ledger,
    apiKeys: deps.apiKeys,
    identity: {
      accessTokenPrincipal: (token, req) => deps.identity.accessTokenPrincipal(token, req),
      sessionPrincipal: (id, req) => deps.identity.sessionPrincipal(id, req),
      sessionCookie: (req) => cookie(req, SESSION_COOKIE),
      certificatePrincipal: (p) => deps.identity.certificatePrincipal(p),
    },
    authz: deps.authz,
    ...(deps.clientCertificates ? { clientCertificates: deps.clientCertificates } : {}),
    seal: () => deps.seal,
    metrics: httpMetrics(deps.registry),
    isDraining: deps.isDraining ?? (() => false),
  });
  systemRoutes(app, { storage: deps.storage, sessions: deps.identity.sessions, seal: () => deps.seal, ledger: deps.ledger, registry: deps.registry, metricsPublic: deps.metricsPublic });
  await app.register(kmsRoutes(deps.kms, deps.kmsMetrics), { prefix: '/v1' });
  await app.register(authRoutes(deps.apiKeys, deps.clock), { prefix: '/v1' });
  await app.register(auditRoutes({ ledger: deps.ledger, log: deps.auditLog, retention: deps.retention, barrier: () => deps.seal.barrier(), clock: deps.clock }), { prefix: '/v1' });
  await app.register(sysRoutes(deps.seal, deps.ledger, deps.approvals), { prefix: '/v1' });
  await app.register(approvalRoutes(deps.approvals, deps.authz), { prefix: '/v1' });
  await app.register(authzRoutes(deps.authz, deps.approvals, deps.clock), { prefix: '/v1' });
  await app.register(gatewayRoutes({ signingKeys: deps.signingKeys, authz: deps.authz }), { prefix: '/v1' });
  if (deps.acme) {
    await app.register(acmeRoutes(deps.acme), { prefix: '/acme' });
    await app.register(eabRoutes(deps.acme.eab), { prefix: '/v1' });
  }
  await app.register(scimRoutes({ directory: deps.identity.directory }), { prefix: '/scim/v2' });
  await app.register(identityAuthRoutes(deps.identity, deps.clock), { prefix: '/v1' });
  await app.register(federationRoutes(deps.identity, deps.clock), { prefix: '/v1' });
  await app.register(identityPages());
  await app.register(identityAdminRoutes(deps.identity, deps.apiKeys, deps.clock), { prefix: '/v1' });
  await app.register(oauthRoutes({ identity: deps.identity, apiKeys: deps.apiKeys, authz: deps.authz, clientCertificates: deps.clientCertificates }));
  await app.register(pkiRoutes({ pki: deps.pki, storage: deps.storage, ledger: deps.ledger }));
  return app;
}

import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import type { SessionStore } from '../engines/identity/sessions.js';
import type { Storage } from '../storage/database.js';
import type { SealManager } from '../kernel/seal/manager.js';
import type { AuditLedger } from '../kernel/audit/ledger.js';

export interface SystemDeps {
  storage: Storage;
  /** The session store, checked by /readyz when it is Redis. */
  sessions?: Pick<SessionStore, 'kind' | 'ping'>;
  seal: () => Pick<SealManager, 'state' | 'checkRoot'>;
  ledger: AuditLedger;
  registry: Registry;
  metricsPublic: boolean;
}

/** Health, readiness, metrics and the OpenAPI document. */
export function systemRoutes(app: FastifyInstance, deps: SystemDeps): void {
  const open: { permission: string | null; allowSealed: boolean } = { permission: null, allowSealed: true };

  app.get('/healthz', { schema: { tags: ['system'], summary: 'Liveness' }, config: open }, async () => ({ status: 'ok' }));

  app.get('/readyz', { schema: { tags: ['system'], summary: 'Readiness: storage reachable, seal open, audit log writable' }, config: open }, async (_req, reply) => {
    const checks: Record<string, string> = {};
    const attempt = async (name: string, fn: () => Promise<unknown>) => {
      try {
        await fn();
        checks[name] = 'ok';
      } catch (e) {
        checks[name] = `failed: ${(e as Error).message}`;
      }
    };
    await attempt('storage', () => deps.storage.ping());
    const seal = deps.seal();
    if (seal.state !== 'unsealed') checks.seal = seal.state === 'sealed' ? 'sealed: run `palisade operator unseal`' : 'uninitialized: run `palisade operator init`';
    else await attempt('seal', () => seal.checkRoot());
    if (seal.state === 'unsealed') await attempt('audit', () => deps.ledger.checkWritable());
    else checks.audit = 'unavailable while sealed';
    if (deps.sessions?.kind === 'redis') await attempt('sessions', () => deps.sessions!.ping());
    const ready = Object.values(checks).every((v) => v === 'ok');
    void reply.code(ready ? 200 : 503);
    return { status: ready ? 'ready' : 'not_ready', checks };
  });

  app.get(
    '/metrics',
    { schema: { tags: ['system'], summary: 'Prometheus metrics', security: deps.metricsPublic ? [] : [{ bearer: [] }] }, config: deps.metricsPublic ? open : { permission: 'system:metrics:read', allowSealed: true } },
    async (_req, reply) => {
      void reply.type(deps.registry.contentType);
      return deps.registry.metrics();
    },
  );

  app.get('/v1/openapi.json', { schema: { tags: ['system'], summary: 'This API as OpenAPI 3.1', hide: true }, config: open }, async () => app.swagger());
}

import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { hostname } from 'node:os';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from './config/config.js';
import { splitAddr } from './config/config.js';
import { openStorage, type Storage } from './storage/database.js';
import { openFileSeal, FILE_SEAL_WARNING } from './kernel/seal/file-seal.js';
import type { Seal } from './kernel/seal/seal.js';
import { AuditLedger } from './kernel/audit/ledger.js';
import { ApiKeyService, newToken } from './kernel/auth/api-keys.js';
import { createRegistry } from './metrics/registry.js';
import { KmsService } from './engines/kms/service.js';
import { kmsMetrics } from './engines/kms/metrics.js';
import { KmsScheduler } from './engines/kms/scheduler.js';
import { ensureServerTls, type ServerTls } from './http/bootstrap-tls.js';
import { buildApp } from './app.js';

export interface Runtime {
  config: Config;
  app: FastifyInstance;
  storage: Storage;
  seal: Seal;
  ledger: AuditLedger;
  kms: KmsService;
  scheduler: KmsScheduler;
  tls: ServerTls | null;
  /** The owner token, only when this start generated it (first start without PALISADE_BOOTSTRAP_TOKEN). */
  generatedToken: string | null;
  close(): Promise<void>;
}

export interface RuntimeOptions {
  log: Logger;
  clock?: () => Date;
  /** Serve HTTPS (production); tests leave it off and use inject(). */
  tls?: boolean;
  isDraining?: () => boolean;
}

/** Everything the server needs, in dependency order: seal → storage → audit → owner credential → TLS → engines → app. */
export async function createRuntime(config: Config, opts: RuntimeOptions): Promise<Runtime> {
  const clock = opts.clock ?? (() => new Date());
  const log = opts.log;
  await mkdir(config.data_dir, { recursive: true, mode: 0o700 });

  const { seal } = await openFileSeal(config.data_dir);
  log.warn(FILE_SEAL_WARNING);

  const storage = await openStorage({ url: config.database_url ?? join(config.data_dir, 'palisade.db'), sqliteSynchronous: config.storage.sqlite_synchronous });
  try {
    const ledger = new AuditLedger(storage, () => seal.barrier(), clock);
    const apiKeys = new ApiKeyService(storage, clock);
    const generatedToken = await ensureOwner(storage, ledger, apiKeys, config, clock);

    let tls: ServerTls | null = null;
    if (opts.tls) {
      const { host } = splitAddr(config.addr);
      const names = [...new Set(['localhost', '127.0.0.1', '::1', hostname(), ...(host && host !== '0.0.0.0' && host !== '::' ? [host] : []), ...config.tls.names])];
      tls = await ensureServerTls(config.data_dir, seal.barrier(), names, clock());
      if (tls.issued) log.info({ ca_file: tls.caFile, names }, 'issued server certificate from the bootstrap CA');
    }

    const registry = createRegistry();
    const metrics = kmsMetrics(registry, () => storage.db, clock);
    const kms = new KmsService({
      barrier: () => seal.barrier(),
      clock,
      metrics,
      config: {
        rotationDays: config.kms.rotation_days,
        maxEncryptionsPerVersion: config.kms.max_encryptions_per_version,
        nonceBlock: config.kms.nonce_block,
        schedulerIntervalSeconds: config.kms.scheduler_interval_seconds,
      },
    });
    const scheduler = new KmsScheduler({ storage, ledger, service: kms, log, clock, intervalSeconds: config.kms.scheduler_interval_seconds });
    const app = await buildApp({
      storage,
      seal: () => seal,
      ledger,
      apiKeys,
      kms,
      kmsMetrics: metrics,
      registry,
      log,
      clock,
      bodyLimit: config.limits.body_bytes,
      metricsPublic: config.metrics.public,
      ...(tls ? { https: { key: tls.key, cert: tls.cert, minVersion: config.tls.min_version } } : {}),
      ...(opts.isDraining ? { isDraining: opts.isDraining } : {}),
    });
    return {
      config,
      app,
      storage,
      seal,
      ledger,
      kms,
      scheduler,
      tls,
      generatedToken,
      async close() {
        await scheduler.stop();
        await app.close();
        await storage.close();
      },
    };
  } catch (e) {
    await storage.close();
    throw e;
  }
}

/**
 * First start: the owner credential (`*`), from PALISADE_BOOTSTRAP_TOKEN or random. A settings row guards it so that
 * N nodes starting together on PostgreSQL create exactly one.
 */
async function ensureOwner(storage: Storage, ledger: AuditLedger, apiKeys: ApiKeyService, config: Config, clock: () => Date): Promise<string | null> {
  const done = await storage.db.selectFrom('settings').select('value').where('name', '=', 'bootstrap').executeTakeFirst();
  if (done) return null;
  const token = config.bootstrap_token ?? newToken();
  try {
    await storage.db.transaction().execute(async (tx) => {
      await tx.insertInto('settings').values({ name: 'bootstrap', value: clock().toISOString() }).execute();
      const key = await apiKeys.create(tx, { name: 'bootstrap owner', principal_id: 'owner', permissions: ['*'], created_by: null, token });
      await ledger.append(tx, {
        type: 'auth.bootstrap',
        actor: { principal_id: 'system:bootstrap' },
        outcome: 'success',
        resource: { type: 'api_key', id: key.id },
        details: { principal_id: 'owner', source: config.bootstrap_token ? 'PALISADE_BOOTSTRAP_TOKEN' : 'generated' },
      });
    });
  } catch (e) {
    const again = await storage.db.selectFrom('settings').select('value').where('name', '=', 'bootstrap').executeTakeFirst();
    if (again) return null; // another node won the race
    throw e;
  }
  if (config.bootstrap_token) return null;
  await writeFile(join(config.data_dir, 'bootstrap-token'), token + '\n', { mode: 0o600 });
  return token;
}

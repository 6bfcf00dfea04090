import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { hostname } from 'node:os';
import { X509Certificate } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { PalisadeError } from '@palisade/core';
import type { Logger } from 'pino';
import type { Config } from './config/config.js';
import { splitAddr } from './config/config.js';
import { openStorage, type Storage } from './storage/database.js';
import { openPkcs11CaKeys, openSeal } from './kernel/seal/open.js';
import type { SealManager } from './kernel/seal/manager.js';
import type { Pkcs11CaKeys } from './kernel/seal/pkcs11-ca-keys.js';
import { hsmMetrics } from './kernel/seal/metrics.js';
import { AuditLedger } from './kernel/audit/ledger.js';
import { ApiKeyService, newToken } from './kernel/auth/api-keys.js';
import { createRegistry } from './metrics/registry.js';
import type { Registry } from 'prom-client';
import { auditMetrics } from './kernel/audit/metrics.js';
import { AUDIT_CHECKPOINT_KEY, KmsService, TOKEN_SIGNING_KEY } from './engines/kms/service.js';
import { Checkpointer } from './kernel/audit/checkpointer.js';
import { kmsCheckpointSigner } from './kernel/audit/checkpoint-signer.js';
import { createAnchors } from './kernel/audit/anchors/create.js';
import { AuditRetention } from './kernel/audit/retention.js';
import { AuditLog } from './engines/audit/log.js';
import { nodeId } from './kernel/lease.js';
import { startAuditExports, type AuditExports } from './engines/audit/export/exporter.js';
import { ApprovalService } from './kernel/approvals/approvals.js';
import type { KmsConfig } from './engines/kms/config.js';
import { kmsMetrics } from './engines/kms/metrics.js';
import { KmsScheduler } from './engines/kms/scheduler.js';
import { bootstrapCertificateSource, ensureServerTls, type ServerTls } from './http/bootstrap-tls.js';
import { Server as TlsServer } from 'node:tls';
import { ListenerTls, type ListenerCertificateSource } from './http/listener-tls.js';
import type { OcspStapler } from './http/ocsp-staple.js';
import { pkiListenerSource } from './engines/pki/listener.js';
import { X509ClientAuthenticator } from './kernel/auth/client-certificates.js';
import { buildApp } from './app.js';
import { AcmeEngine } from './engines/acme/engine.js';
import type { AcmeCertificateAuthority } from './engines/acme/ports.js';
import { CaHierarchy } from './engines/pki/cas.js';
import { PkiService } from './engines/pki/service.js';
import { pkiMetrics } from './engines/pki/metrics.js';
import { DEFAULT_POLICY, DEFAULT_TEMPLATES } from './engines/pki/templates.js';
import { IdentityEngine } from './engines/identity/engine.js';
import { AuthzEngine } from './engines/authz/engine.js';
import { AuthGeneration } from './kernel/auth/generation.js';
import { openGateway, type GatewayRuntime } from './engines/gateway/open.js';
import { SigningKeys } from './engines/gateway/signing-keys.js';
import { gatewayFields } from './engines/gateway/fields.js';

export interface Runtime {
  config: Config;
  app: FastifyInstance;
  storage: Storage;
  seal: SealManager;
  ledger: AuditLedger;
  registry: Registry;
  kms: KmsService;
  pki: PkiService;
  acme: AcmeEngine;
  identity: IdentityEngine;
  authz: AuthzEngine;
  scheduler: KmsScheduler;
  checkpointer: Checkpointer;
  retention: AuditRetention;
  auditLog: AuditLog;
  tls: ServerTls | null;
  /** The HTTPS listener's certificate (hot reload, client certificates, OCSP stapling); null without TLS. */
  listener: ListenerTls | null;
  /** The API gateway (gateway.enabled): its engine and its own listener, which `serve` (or a test) starts. */
  gateway: GatewayRuntime | null;
  /** Start the background jobs (rotation scheduler, checkpointer, retention, SIEM exports); `serve` does, tests drive them by hand. */
  startJobs(): void;
  /** The owner token, once generated (first unseal without PALISADE_BOOTSTRAP_TOKEN); also given to `onOwnerToken`. */
  generatedToken: string | null;
  close(): Promise<void>;
}

export interface RuntimeOptions {
  log: Logger;
  clock?: () => Date;
  /** Serve HTTPS (production); tests leave it off and use inject(). */
  tls?: boolean;
  isDraining?: () => boolean;
  /** Called once with a generated owner token (first unseal without PALISADE_BOOTSTRAP_TOKEN), to show it. */
  onOwnerToken?: (token: string) => void;
  /** The CA behind the ACME server; the PKI engine's by default (tests substitute one). */
  acmeCa?: AcmeCertificateAuthority;
}

/**
 * Everything the server needs, in dependency order: storage → TLS → seal → audit → engines → app. The owner
 * credential is created on the first unseal (at once for file/pkcs11; after `operator init` for passphrase).
 */
export async function createRuntime(config: Config, opts: RuntimeOptions): Promise<Runtime> {
  const clock = opts.clock ?? (() => new Date());
  const log = opts.log;
  await mkdir(config.data_dir, { recursive: true, mode: 0o700 });

  const storage = await openStorage({ url: config.database_url ?? join(config.data_dir, 'palisade.db'), sqliteSynchronous: config.storage.sqlite_synchronous });
  let seal: SealManager | null = null;
  const generation = new AuthGeneration(storage, { pollMs: config.authz.generation_poll_ms, onError: (e) => log.warn({ err: e }, 'authorization change notifications: connection lost, polling') });
  try {
    let tls: ServerTls | null = null;
    let listener: ListenerTls | null = null;
    // The listener starts before the seal opens: it serves the bootstrap certificate until the PKI can issue its own.
    let bootstrap: ListenerCertificateSource | null = null;
    let listenerNames: string[] = [];
    let pkiSource: ListenerCertificateSource | null = null;
    let pkiStapler: OcspStapler | null = null;
    let reloading: Promise<void> = Promise.resolve();
    if (opts.tls) {
      const { host } = splitAddr(config.addr);
      const names = [...new Set(['localhost', '127.0.0.1', '::1', hostname(), ...(host && host !== '0.0.0.0' && host !== '::' ? [host] : []), ...config.tls.names])];
      tls = await ensureServerTls(config.data_dir, names, clock());
      if (tls.issued) log.info({ ca_file: tls.caFile, names }, 'issued server certificate from the bootstrap CA');
      bootstrap = bootstrapCertificateSource(config.data_dir, names, clock);
      listenerNames = names;
      listener = await ListenerTls.open({
        source: { current: () => (pkiSource ?? bootstrap!).current() },
        staple: async (leaf, issuer) => (pkiStapler ? pkiStapler(leaf, issuer) : null),
        minVersion: config.tls.min_version,
        clientAuth: config.tls.client_auth.mode,
        reloadCheckSeconds: config.tls.reload_check_seconds,
        clock,
        log,
      });
    }

    const registry = createRegistry();
    const hsm = hsmMetrics(registry);
    const sealRef = await openSeal(config, storage, log, hsm.observe);
    seal = sealRef;
    const ledger = new AuditLedger(storage, () => sealRef.barrier(), { clock });
    auditMetrics(registry, ledger);
    await generation.start();
    const apiKeys = new ApiKeyService(storage, clock, generation);
    let generatedToken: string | null = null;
    const owner = async () => {
      const token = await ensureOwner(storage, ledger, apiKeys, config, clock);
      if (token) {
        generatedToken = token;
        opts.onOwnerToken?.(token);
      }
    };
    sealRef.onUnseal(owner);
    if (sealRef.state === 'unsealed') await owner();

    const metrics = kmsMetrics(registry, () => storage.db, clock);
    const approvals = new ApprovalService(clock);
    const kms = new KmsService({
      approvals,
      lastBackupAt: async (db) => (await ledger.query({ type: 'backup.create', limit: 1 }, 1, db)).events[0]?.time ?? null,
      barrier: () => sealRef.barrier(),
      root: () => {
        if (!sealRef.root) throw new PalisadeError('PAL_SEAL_SEALED');
        return sealRef.root;
      },
      clock,
      metrics,
      config: {
        rotationDays: config.kms.rotation_days,
        maxEncryptionsPerVersion: config.kms.max_encryptions_per_version,
        nonceBlock: config.kms.nonce_block,
        schedulerIntervalSeconds: config.kms.scheduler_interval_seconds,
        tokenSigningAlgorithm: config.identity.tokens.algorithm === 'ES256' ? 'ECDSA-P256' : 'ED25519',
        policies: Object.fromEntries(
          Object.entries(config.kms.rotation_policies).map(([t, p]) => [t, { frequencyDays: p.frequency_days, overlapDays: p.overlap_days, approval: p.approval }]),
        ) as KmsConfig['policies'],
      },
    });
    const holder = nodeId(config.data_dir);
    const scheduler = new KmsScheduler({ storage, ledger, service: kms, approvals, log, clock, holder, intervalSeconds: config.kms.scheduler_interval_seconds });
    sealRef.onSeal(() => {
      kms.forgetAll();
      ledger.subjects.forgetAll();
    });
    sealRef.onRootRotation((db, from, to) => kms.rewrapRoot(db, from, to));
    approvals.register('seal.rotate_root', async (ctx) => {
      const out = await sealRef.rotateRoot(ctx.db, ctx);
      ctx.emit({ type: 'seal.rotate_root', outcome: 'success', resource: { type: 'seal', id: sealRef.provider }, details: out });
      return out;
    });
    kms.onKekRotated = () => scheduler.kick();
    sealRef.onUnseal(() => scheduler.ensureSystemKeys());
    if (sealRef.state === 'unsealed') await scheduler.ensureSystemKeys();
    // An HSM that goes away is noticed without traffic: hsm_operations_total{operation="check",status="failed"} rises.
    const health = setInterval(() => {
      const was = sealRef.unavailable;
      sealRef.checkRoot().then(
        () => was && log.warn('root of trust reachable again'),
        (e: unknown) => was || log.error({ err: e }, 'root of trust unavailable: data routes answer 503 until it is back'),
      );
    }, config.seal.health_check_seconds * 1000);
    health.unref();
    const caKeys = await openPkcs11CaKeys(config, hsm.observe);
    const pki = createPki(config, kms, clock, caKeys);
    pkiMetrics(registry, () => storage.db, clock);
    const unsealed = () => sealRef.state === 'unsealed';
    if (bootstrap) {
      pkiSource = pkiListenerSource({ dataDir: config.data_dir, names: listenerNames, pki, storage, ledger, fallback: bootstrap, ready: unsealed, renewBeforeDays: config.pki.renew_before_days, clock });
      pkiStapler = (leaf, issuer) => (unsealed() ? pki.ocspFor(storage.db, leaf, issuer) : Promise.resolve(null));
      const reload = async () => {
        reloading = (listener?.reload() ?? Promise.resolve(false)).then(
          () => undefined,
          (err: unknown) => log.error({ err }, 'listener certificate reload failed; still serving the previous one'),
        );
        await reloading;
      };
      sealRef.onUnseal(reload);
      pki.onCaChange(reload);
      if (unsealed()) await reload();
    }
    const acme = new AcmeEngine({ storage, ledger, barrier: () => sealRef.barrier(), ca: opts.acmeCa ?? pki.acmeAuthority(), config: config.acme, clock, log });
    const signer = kmsCheckpointSigner({ storage, kms, keyName: AUDIT_CHECKPOINT_KEY, origin: () => auditLog.origin() });
    const auditLog = new AuditLog({ storage, ledger, signer, configuredOrigin: config.audit.origin, clock });
    const checkpointer = new Checkpointer({
      storage,
      ledger,
      signer,
      anchors: createAnchors(config.audit.anchors),
      origin: () => auditLog.origin(),
      intervalSeconds: config.audit.checkpoint.interval_seconds,
      maxEvents: config.audit.checkpoint.max_events,
      log,
      registry,
      clock,
      isSealed: () => sealRef.state !== 'unsealed',
      holder,
    });
    const retention = new AuditRetention({
      storage,
      ledger,
      approvals,
      barrier: () => sealRef.barrier(),
      config: config.audit.retention,
      clock,
      holder,
      intervalSeconds: config.audit.retention.purge_interval_seconds,
      onError: (e) => log.error({ err: e }, 'audit retention pass failed'),
    });
    let exports: AuditExports | undefined;
    const tlsListener = listener;
    let pkiIntermediates: Promise<X509Certificate[]> | undefined;
    pki.onCaChange(async () => void (pkiIntermediates = undefined));
    const clientCertificates =
      tlsListener && config.tls.client_auth.mode !== 'off'
        ? new X509ClientAuthenticator({
            trust: () => tlsListener.trustRoots,
            revocation: { revokedSerials: () => pki.revokedSerials(storage.db) },
            intermediates: () =>
              (pkiIntermediates ??= pki.intermediateCertificates(storage.db).catch((e: unknown) => {
                pkiIntermediates = undefined; // the next handshake tries again
                throw e;
              })),
            identities: config.tls.client_auth.identities,
            revocationCheckSeconds: config.tls.client_auth.revocation_check_seconds,
            clock,
          })
        : undefined;
    const identity = new IdentityEngine({
      storage,
      ledger,
      barrier: () => sealRef.barrier(),
      kms,
      tokenKeyName: TOKEN_SIGNING_KEY,
      config: config.identity,
      publicUrl: config.identity.public_url ?? identityUrl(config),
      redisUrl: config.redis_url,
      clientCertificates: () => clientCertificates,
      generation,
      clock,
    });
    const authz = new AuthzEngine({
      storage,
      generation,
      approvals,
      clock,
      subjects: async (id, db) => {
        const s = await identity.principals.get(id, db);
        return s?.active ? { org_id: s.org_id, roles: s.roles, groups: s.groups } : null;
      },
    });
    const signingKeys = new SigningKeys({ storage, barrier: () => sealRef.barrier(), generation, clock });
    const app = await buildApp({
      identity,
      authz,
      signingKeys,
      auditLog,
      retention,
      approvals,
      storage,
      seal: sealRef,
      ledger,
      apiKeys,
      kms,
      pki,
      acme,
      kmsMetrics: metrics,
      registry,
      log,
      clock,
      bodyLimit: config.limits.body_bytes,
      metricsPublic: config.metrics.public,
      ...(listener ? { https: listener.serverOptions() } : {}),
      ...(clientCertificates ? { clientCertificates } : {}),
      ...(opts.isDraining ? { isDraining: opts.isDraining } : {}),
    });
    const gateway = config.gateway.enabled
      ? await openGateway({
          config: config.gateway,
          redisUrl: config.redis_url,
          tls: opts.tls ? { source: { current: () => (pkiSource ?? bootstrap!).current() }, staple: async (leaf, issuer) => (pkiStapler ? pkiStapler(leaf, issuer) : null), minVersion: config.tls.min_version, clientAuth: config.tls.client_auth.mode, reloadCheckSeconds: config.tls.reload_check_seconds } : undefined,
          credentials: {
            apiKey: (token) => apiKeys.authenticate(token),
            accessToken: (token, req) => identity.accessTokenPrincipal(token, { raw: req }),
            ...(clientCertificates ? { certificate: async (chain: Buffer[]) => identity.certificatePrincipal(await clientCertificates.authenticate(chain)) } : {}),
          },
          authz,
          fields: gatewayFields({ kms, storage, ledger, clock }),
          signingKeys,
          audit: async (event) => void (await ledger.appendStandalone(event)),
          unavailable: () => (sealRef.state !== 'unsealed' ? 'the server is sealed' : sealRef.unavailable ?? null),
          registry,
          clock,
          log,
        })
      : null;
    if (gateway && opts.tls) {
      const reload = () => gateway.reload().catch((err: unknown) => log.error({ err }, 'gateway certificate reload failed; still serving the previous one'));
      sealRef.onUnseal(reload);
      pki.onCaChange(reload);
      if (unsealed()) await reload();
    }
    if (listener) {
      const server = app.server;
      if (!(server instanceof TlsServer)) throw new Error('buildApp did not create an HTTPS server');
      listener.attach(server);
    }
    return {
      config,
      app,
      storage,
      seal: sealRef,
      ledger,
      registry,
      kms,
      pki,
      acme,
      identity,
      authz,
      scheduler,
      checkpointer,
      retention,
      auditLog,
      tls,
      listener,
      gateway,
      get generatedToken() {
        return generatedToken;
      },
      startJobs() {
        scheduler.start();
        checkpointer.start();
        retention.start(() => sealRef.state !== 'unsealed');
        acme.start(() => sealRef.state !== 'unsealed');
        exports ??= startAuditExports({ storage, ledger, sinks: config.audit.exports, log, registry, clock, nodeId: holder });
      },
      async close() {
        clearInterval(health);
        listener?.close();
        await gateway?.close();
        await reloading;
        await exports?.stop();
        await scheduler.stop();
        await checkpointer.stop();
        await retention.stop();
        await app.close();
        await identity.close();
        await generation.stop();
        await acme.close();
        await caKeys?.close();
        await sealRef.close();
        await storage.close();
      },
    };
  } catch (e) {
    await seal?.close();
    await generation.stop();
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
    await storage.transact(async (tx) => {
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

/** https://<host>:<port> of the listener, with the machine's name for a wildcard address. */
function publicBaseUrl(config: Config): string {
  const { host, port } = splitAddr(config.addr);
  const publicHost = !host || host === '0.0.0.0' || host === '::' ? hostname() : host.includes(':') ? `[${host}]` : host;
  return `https://${publicHost}:${port}`;
}

/**
 * The URL users reach when `identity.public_url` is unset: the listener's, with `localhost` for a loopback address
 * (a WebAuthn RP id cannot be an IP address, and browsers treat https://localhost as the same machine).
 */
function identityUrl(config: Config): string {
  const { host, port } = splitAddr(config.addr);
  return host === '127.0.0.1' || host === '::1' || host === '[::1]' ? `https://localhost:${port}` : publicBaseUrl(config);
}

/**
 * The PKI engine as configured: the CA hierarchy over the KMS (and, with the pkcs11 seal, the token for a root whose
 * key lives in the HSM), the seed's template and least-privilege policy by default.
 */
function createPki(config: Config, kms: KmsService, clock: () => Date, hsm: Pkcs11CaKeys | undefined): PkiService {
  const p = config.pki;
  const baseUrl = p.base_url ?? publicBaseUrl(config);
  const cas = new CaHierarchy({ kms, hsm, clock, settings: { organization: p.organization, country: p.country, root: p.root, intermediate: p.intermediate, baseUrl: () => baseUrl } });
  return new PkiService({
    cas,
    clock,
    settings: {
      trust_domain: p.trust_domain,
      organization: p.organization,
      country: p.country,
      environment: p.environment,
      templates: { ...DEFAULT_TEMPLATES, ...p.templates },
      policy: p.policy ?? DEFAULT_POLICY,
      crlValidityHours: p.crl_validity_hours,
      ocspValidityHours: p.ocsp_validity_hours,
    },
  });
}

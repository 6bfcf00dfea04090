import type { OpContext } from '../../kernel/op-context.js';
import { constants, sign as cryptoSign, type KeyObject } from 'node:crypto';
import {
  aeadOpen,
  aeadSeal,
  canonicalBytes,
  constantTimeEqual,
  CLASSIFICATIONS,
  PalisadeError,
  randomBytes,
  randomId,
  type Algorithm,
  type Approval,
  type Classification,
  type CreateKeyRequest,
  type EncryptedData,
  TRANSFER_FORMAT,
  unwrapTransfer,
  wrapForTransfer,
  type ExportedKey,
  type ExportKeyRequest,
  type ImportKeyRequest,
  type KeyMetadata,
  type KeyStatus,
  type KeyType,
  type ListKeysQuery,
  type UpdateKeyRequest,
  type Usage,
} from '@palisade/core';
import type { Executor } from '../../storage/database.js';
import type { ResourceAttrs } from '../../kernel/auth/decision.js';
import type { KmsKeyTable, KmsKeyVersionTable } from '../../storage/schema.js';
import { Barrier } from '../../kernel/seal/barrier.js';
import type { RootKeyProvider } from '../../kernel/seal/provider.js';
import type { ApprovalService } from '../../kernel/approvals/approvals.js';
import { ALGORITHM_SPECS, generateMaterial, hmac, privateKeyFrom, publicKeyFrom, resolveUsage, signMessage, verifyMessage } from './algorithms.js';
import type { KmsConfig } from './config.js';
import type { KmsMetrics } from './metrics.js';
import { NonceBudget } from './nonce-budget.js';
import { checkImported, newWrappingKey, receiverKey } from './transfer.js';

const DAY_MS = 86_400_000;
const AAD_FORMAT = 1;

/** What an operation runs in: the request's transaction and hooks to the pipeline. */
export type { OpContext } from '../../kernel/op-context.js';

export interface KmsDeps {
  barrier: () => Barrier;
  approvals: ApprovalService;
  /** The seal's root: system KEKs are wrapped by it (inside the HSM for pkcs11). */
  root: () => RootKeyProvider;
  /** When the last backup was taken (the rotation's pre-check records it), if any. */
  lastBackupAt?: (db: Executor) => Promise<string | null>;
  config: KmsConfig;
  metrics: KmsMetrics;
  clock: () => Date;
}

/** The AAD every KMS ciphertext is bound to: key, version, algorithm and the caller's context, in canonical JSON. */
function aadFor(keyId: string, version: number, algorithm: string, context: Record<string, unknown> | undefined): Buffer {
  return canonicalBytes({ f: AAD_FORMAT, kid: keyId, ver: version, alg: algorithm, ctx: context ?? {} });
}

function b64(buf: Uint8Array): string {
  return Buffer.from(buf).toString('base64');
}

export class KmsService {
  readonly #budget: NonceBudget;
  /** Unsealed key material by `key_id:version`; bounded, evicted on destruction. */
  readonly #material = new Map<string, Buffer | KeyObject>();
  /** A barrier per unwrapped KEK version (`kek_id:version`), to wrap and unwrap the keys under it. */
  readonly #kekBarriers = new Map<string, Barrier>();
  readonly #attributes = new Map<string, ResourceAttrs>();

  constructor(private readonly deps: KmsDeps) {
    this.#budget = new NonceBudget(deps.config.maxEncryptionsPerVersion, deps.config.nonceBlock);
    deps.approvals.register('kms.key.destroy', async (ctx, approval) => {
      const d = approval.details as { pending_days: number; version: number | null };
      const meta = await this.scheduleDestruction({ db: ctx.db, emit: ctx.emit }, approval.resource.id, d.pending_days, d.version ?? undefined);
      return { key_id: meta.key_id, destroy_at: d.version === null ? meta.destroy_at : (meta.versions?.find((v) => v.version === d.version)?.destroy_at ?? null) };
    });
    deps.approvals.register('kms.key.rotate', async (ctx, approval) => {
      const meta = await this.rotate({ db: ctx.db, emit: ctx.emit }, approval.resource.id, 'approved');
      if (meta.rewrap?.pending) ctx.afterCommit(async () => this.kekRotated());
      return { key_id: meta.key_id, version: meta.version };
    });
  }

  #now(): Date {
    return this.deps.clock();
  }

  // ---------------------------------------------------------------- lifecycle

  async create(ctx: OpContext, req: CreateKeyRequest): Promise<KeyMetadata> {
    if (isSystemKey(req.name ?? null)) throw new PalisadeError('PAL_VALIDATION_FAILED', 'names starting with system/ are reserved');
    return this.#create(ctx, req);
  }

  async #create(ctx: OpContext, req: CreateKeyRequest, imported?: { secret: Buffer; publicKey: Buffer | null }): Promise<KeyMetadata> {
    const usage = resolveUsage(req.key_type, req.algorithm, req.usage);
    const classification: Classification = req.classification ?? 'internal';
    if (req.name !== undefined) {
      const taken = await ctx.db.selectFrom('kms_keys').select('key_id').where('name', '=', req.name).executeTakeFirst();
      if (taken) throw new PalisadeError('PAL_KMS_KEY_NAME_TAKEN', `a key named ${req.name} already exists`, { extensions: { key_id: taken.key_id } });
    }
    const now = this.#now().toISOString();
    const key: KmsKeyTable = {
      key_id: newKeyId(),
      name: req.name ?? null,
      key_type: req.key_type,
      algorithm: req.algorithm,
      usage: JSON.stringify(usage),
      classification,
      status: 'active',
      current_version: 1,
      min_decryption_version: 1,
      rotation_period_days: req.rotation_period_days ?? Math.min(this.deps.config.rotationDays[classification], this.deps.config.policies[req.key_type].frequencyDays),
      created_at: now,
      rotated_at: now,
      destroy_at: null,
      status_before_destruction: null,
      origin: imported ? 'imported' : 'generated',
      exportable: req.exportable ? 1 : 0,
    };
    const version = await this.#newVersion(ctx.db, key, 1, now, imported);
    await ctx.db.insertInto('kms_keys').values(key).execute();
    await ctx.db.insertInto('kms_key_versions').values(version).execute();
    return this.#metadata(key, [version]);
  }

  async #newVersion(db: Executor, key: KmsKeyTable, version: number, now: string, material?: { secret: Buffer; publicKey: Buffer | null }): Promise<KmsKeyVersionTable> {
    const m = material ?? (await generateMaterial(key.algorithm as Algorithm));
    return { key_id: key.key_id, version, status: 'active', ...(await this.#wrap(db, key, version, m.secret)), public_key: m.publicKey, created_at: now, destroy_at: null, nonces_reserved: 0, deactivate_at: null, ciphertexts: 0, rewrapped_away: 0 };
  }

  // ---------------------------------------------------------------- bring your own key, and wrapped export

  /** The RSA-4096 public key that importers wrap their keys for (created once, its private key under the barrier). */
  async wrappingKey(db: Executor): Promise<{ publicKeyPem: string; privateKey: () => KeyObject }> {
    let row = await db.selectFrom('settings').select('value').where('name', '=', WRAPPING_KEY).executeTakeFirst();
    if (!row) {
      const fresh = await newWrappingKey();
      const value = JSON.stringify({ public_key_pem: fresh.publicKeyPem, private_key: this.deps.barrier().seal(WRAPPING_KEY, fresh.privateKey).toString('base64') });
      fresh.privateKey.fill(0);
      await db.insertInto('settings').values({ name: WRAPPING_KEY, value }).onConflict((oc) => oc.column('name').doNothing()).execute();
      row = await db.selectFrom('settings').select('value').where('name', '=', WRAPPING_KEY).executeTakeFirstOrThrow();
    }
    const stored = JSON.parse(row.value) as { public_key_pem: string; private_key: string };
    return { publicKeyPem: stored.public_key_pem, privateKey: () => privateKeyFrom(this.deps.barrier().open(WRAPPING_KEY, Buffer.from(stored.private_key, 'base64'))) };
  }

  async importKey(ctx: OpContext, req: ImportKeyRequest): Promise<KeyMetadata> {
    const { wrapped_key, ...create } = req;
    if (isSystemKey(create.name ?? null)) throw new PalisadeError('PAL_VALIDATION_FAILED', 'names starting with system/ are reserved');
    resolveUsage(create.key_type, create.algorithm, create.usage); // refuse misfits before touching the material
    const material = unwrapTransfer((await this.wrappingKey(ctx.db)).privateKey(), Buffer.from(wrapped_key, 'base64'));
    try {
      return await this.#create(ctx, create, checkImported(create.algorithm, material));
    } finally {
      material.fill(0);
    }
  }

  async exportKey(db: Executor, keyId: string, req: ExportKeyRequest): Promise<ExportedKey> {
    const key = await this.#key(db, keyId);
    this.#assertNotDestroyed(key);
    this.#assertNotSystem(key);
    if (key.exportable !== 1) throw new PalisadeError('PAL_KMS_NOT_EXPORTABLE', `key ${keyId} was not created exportable`);
    const receiver = receiverKey(req.public_key_pem);
    const version = req.version ?? key.current_version;
    const v = await this.#version(db, keyId, version);
    if (!v.material || v.status === 'destroyed') throw new PalisadeError('PAL_KMS_KEY_DESTROYED');
    const secret = await this.#unwrap(db, v);
    try {
      return { key_id: keyId, version, algorithm: key.algorithm as Algorithm, format: TRANSFER_FORMAT, wrapped_key: wrapForTransfer(receiver, secret).toString('base64') };
    } finally {
      secret.fill(0);
    }
  }

  // ---------------------------------------------------------------- key hierarchy: root -> system KEKs -> keys

  /** System KEKs wrap under the root (the HSM); every other key under the current KEK of its classification. */
  async #wrap(db: Executor, key: KmsKeyTable, version: number, secret: Buffer): Promise<Pick<KmsKeyVersionTable, 'material' | 'wrapping' | 'kek_id' | 'kek_version'>> {
    if (key.name?.startsWith(SYSTEM_KEK_PREFIX)) return { material: await this.deps.root().wrap(secret), wrapping: 'root', kek_id: null, kek_version: null };
    const kek = await this.#systemKek(db, key.classification as Classification);
    const barrier = await this.#kekBarrier(db, kek, kek.current_version);
    return { material: barrier.seal(purpose(key.key_id, version), secret), wrapping: 'kek', kek_id: kek.key_id, kek_version: kek.current_version };
  }

  async #unwrap(db: Executor, v: KmsKeyVersionTable): Promise<Buffer> {
    const material = v.material!;
    if (v.wrapping === 'root') return this.deps.root().unwrap(material);
    if (v.wrapping === 'kek') return (await this.#kekBarrier(db, await this.#key(db, v.kek_id!), v.kek_version!)).open(purpose(v.key_id, v.version), material);
    return this.deps.barrier().open(purpose(v.key_id, v.version), material);
  }

  async #kekBarrier(db: Executor, kek: KmsKeyTable, version: number): Promise<Barrier> {
    const k = `${kek.key_id}:${version}`;
    let b = this.#kekBarriers.get(k);
    if (!b) {
      b = new Barrier((await this.#material_(db, kek, version)) as Buffer);
      this.#kekBarriers.set(k, b);
    }
    return b;
  }

  async #systemKek(db: Executor, classification: Classification): Promise<KmsKeyTable> {
    const kek = await db.selectFrom('kms_keys').selectAll().where('name', '=', kekName(classification)).executeTakeFirst();
    if (!kek) throw new PalisadeError('PAL_INTERNAL', `the system KEK for ${classification} data does not exist yet`);
    return kek;
  }

  /**
   * Create the system keys that do not exist yet (at every unseal; idempotent): the KEK of each classification, and
   * the Ed25519 key that signs the audit log's checkpoints, and the identity engine's access-token key.
   */
  async ensureSystemKeys(ctx: OpContext): Promise<KeyMetadata[]> {
    const wanted: CreateKeyRequest[] = [
      ...CLASSIFICATIONS.map((classification) => ({ key_type: 'KEK' as const, algorithm: 'AES-256-GCM' as const, classification, name: kekName(classification), rotation_period_days: this.deps.config.policies.KEK.frequencyDays })),
      { key_type: 'signing', algorithm: 'ED25519', classification: 'internal', name: AUDIT_CHECKPOINT_KEY, rotation_period_days: this.deps.config.policies.signing.frequencyDays },
      { key_type: 'signing', algorithm: this.deps.config.tokenSigningAlgorithm ?? 'ED25519', classification: 'internal', name: TOKEN_SIGNING_KEY, rotation_period_days: this.deps.config.policies.signing.frequencyDays },
    ];
    const created: KeyMetadata[] = [];
    for (const req of wanted) {
      if (await ctx.db.selectFrom('kms_keys').select('key_id').where('name', '=', req.name!).executeTakeFirst()) continue;
      const meta = await this.#create(ctx, req);
      ctx.emit?.({ type: 'kms.key.create', outcome: 'success', resource: { type: 'kms_key', id: meta.key_id }, details: { name: req.name, system: true } });
      created.push(meta);
    }
    return created;
  }

  /**
   * Background rewrap after a KEK rotation: move up to `limit` key versions still wrapped under an older version of
   * a system KEK to its current version. Each row is rewritten whole, so a crash between batches loses nothing and
   * the next run continues where this one stopped; a row is readable under its old KEK version until then.
   */
  async rewrapPending(db: Executor, limit = 500): Promise<Array<{ kek_id: string; to_version: number; rewrapped: number; pending: number }>> {
    const out: Array<{ kek_id: string; to_version: number; rewrapped: number; pending: number }> = [];
    for (const kek of await db.selectFrom('kms_keys').selectAll().where('name', 'like', `${SYSTEM_KEK_PREFIX}%`).execute()) {
      const rows = await db.selectFrom('kms_key_versions').selectAll().where('kek_id', '=', kek.key_id).where('kek_version', '<', kek.current_version).where('material', 'is not', null).limit(limit).execute();
      if (rows.length === 0) continue;
      const target = await this.#kekBarrier(db, kek, kek.current_version);
      for (const v of rows) {
        const secret = (await this.#kekBarrier(db, kek, v.kek_version!)).open(purpose(v.key_id, v.version), v.material!);
        await db.updateTable('kms_key_versions').set({ material: target.seal(purpose(v.key_id, v.version), secret), kek_version: kek.current_version }).where('key_id', '=', v.key_id).where('version', '=', v.version).execute();
        secret.fill(0);
      }
      const left = await db.selectFrom('kms_key_versions').select((eb) => eb.fn.countAll<number>().as('n')).where('kek_id', '=', kek.key_id).where('kek_version', '<', kek.current_version).where('material', 'is not', null).executeTakeFirstOrThrow();
      out.push({ kek_id: kek.key_id, to_version: kek.current_version, rewrapped: rows.length, pending: Number(left.n) });
    }
    return out;
  }

  /** Root rotation: move every version wrapped by the root (the system KEKs) from `from` to `to`. */
  async rewrapRoot(db: Executor, from: RootKeyProvider, to: RootKeyProvider): Promise<number> {
    const rows = await db.selectFrom('kms_key_versions').select(['key_id', 'version', 'material']).where('wrapping', '=', 'root').where('material', 'is not', null).execute();
    for (const r of rows) {
      const secret = await from.unwrap(r.material!);
      await db.updateTable('kms_key_versions').set({ material: await to.wrap(secret) }).where('key_id', '=', r.key_id).where('version', '=', r.version).execute();
      secret.fill(0);
    }
    return rows.length;
  }

  /** Key versions, under every system KEK, still wrapped under an older KEK version. */
  async rewrapBacklog(db: Executor): Promise<number> {
    let pending = 0;
    for (const kek of await db.selectFrom('kms_keys').selectAll().where('name', 'like', `${SYSTEM_KEK_PREFIX}%`).execute()) pending += (await this.#rewrapProgress(db, kek)).pending;
    return pending;
  }

  async #rewrapProgress(db: Executor, kek: KmsKeyTable): Promise<{ to_version: number; pending: number; total: number }> {
    const rows = await db
      .selectFrom('kms_key_versions')
      .select((eb) => [eb.fn.countAll<number>().as('total'), eb.fn.sum<number>(eb.case().when('kek_version', '<', kek.current_version).then(1).else(0).end()).as('pending')])
      .where('kek_id', '=', kek.key_id)
      .where('material', 'is not', null)
      .executeTakeFirstOrThrow();
    return { to_version: kek.current_version, pending: Number(rows.pending ?? 0), total: Number(rows.total) };
  }

  /**
   * What authorization decides a request on this key by: its name, the project its name starts with
   * (`payments/cards` is in project `payments`) and its classification; null for no such key. Both are fixed at
   * creation, so they are kept (bounded) once read.
   */
  async attributes(db: Executor, keyId: string): Promise<ResourceAttrs | null> {
    let a = this.#attributes.get(keyId);
    if (!a) {
      const key = await db.selectFrom('kms_keys').select(['name', 'classification']).where('key_id', '=', keyId).executeTakeFirst();
      if (!key) return null;
      const slash = key.name?.indexOf('/') ?? -1;
      a = { type: 'kms_key', id: keyId, name: key.name, classification: key.classification, project: slash > 0 ? key.name!.slice(0, slash) : null };
      if (this.#attributes.size >= 100_000) this.#attributes.clear();
      this.#attributes.set(keyId, a);
    }
    return a;
  }

  /** The id of the key with this id or (unique) name; PAL_KMS_KEY_NOT_FOUND when there is none. */
  async keyIdOf(db: Executor, idOrName: string): Promise<string> {
    const row = await db.selectFrom('kms_keys').select('key_id').where((eb) => eb.or([eb('key_id', '=', idOrName), eb('name', '=', idOrName)])).executeTakeFirst();
    if (!row) throw new PalisadeError('PAL_KMS_KEY_NOT_FOUND', `no key ${idOrName}`);
    return row.key_id;
  }

  async get(db: Executor, keyId: string, withVersions = true): Promise<KeyMetadata> {
    const key = await this.#key(db, keyId);
    const versions = withVersions ? await db.selectFrom('kms_key_versions').selectAll().where('key_id', '=', keyId).orderBy('version').execute() : undefined;
    const wrapped = versions && key.key_type === 'KEK' ? await this.#wrappedCounts(db, keyId) : undefined;
    const meta = { ...this.#metadata(key, versions, wrapped), rotation: await this.#rotationState(db, key) };
    return isSystemKey(key.name) ? { ...meta, rewrap: await this.#rewrapProgress(db, key) } : meta;
  }

  async list(db: Executor, q: ListKeysQuery): Promise<{ keys: KeyMetadata[]; next_cursor: string | null }> {
    const limit = q.limit ?? 50;
    let query = db.selectFrom('kms_keys').selectAll().orderBy('key_id').limit(limit + 1);
    if (q.cursor) query = query.where('key_id', '>', q.cursor);
    if (q.key_type) query = query.where('key_type', '=', q.key_type);
    if (q.classification) query = query.where('classification', '=', q.classification);
    if (q.status) query = query.where('status', '=', q.status);
    if (q.name) query = query.where('name', '=', q.name);
    const rows = await query.execute();
    const page = rows.slice(0, limit);
    return { keys: page.map((k) => this.#metadata(k)), next_cursor: rows.length > limit ? (page[page.length - 1]?.key_id ?? null) : null };
  }

  async update(ctx: OpContext, keyId: string, req: UpdateKeyRequest): Promise<KeyMetadata> {
    const key = await this.#key(ctx.db, keyId);
    this.#assertNotDestroyed(key);
    const patch: Partial<KmsKeyTable> = {};
    if (req.min_decryption_version !== undefined) {
      if (req.min_decryption_version > key.current_version) {
        throw new PalisadeError('PAL_VALIDATION_FAILED', `min_decryption_version cannot exceed the current version ${key.current_version}`);
      }
      patch.min_decryption_version = req.min_decryption_version;
    }
    if (req.rotation_period_days !== undefined) patch.rotation_period_days = req.rotation_period_days;
    await ctx.db.updateTable('kms_keys').set(patch).where('key_id', '=', keyId).execute();
    return this.get(ctx.db, keyId);
  }

  /**
   * New version; new encryptions use it and older versions stay decrypt-only. The version number comes from an atomic
   * UPDATE of the key row, so concurrent rotations serialize and never lose or duplicate a version.
   * `onlyIfCurrent` makes the rotation conditional (automatic rotations must not stack).
   */
  async rotate(ctx: OpContext, keyId: string, reason: 'manual' | 'scheduled' | 'approved' | 'nonce_limit', onlyIfCurrent?: number): Promise<KeyMetadata> {
    const key = await this.#key(ctx.db, keyId);
    assertNotCaKey(key);
    if (key.status !== 'active') throw new PalisadeError('PAL_KMS_INVALID_STATE', `a ${key.status} key cannot be rotated`);
    const now = this.#now().toISOString();
    let upd = ctx.db
      .updateTable('kms_keys')
      .set((eb) => ({ current_version: eb('current_version', '+', 1), rotated_at: now }))
      .where('key_id', '=', keyId)
      .where('status', '=', 'active');
    if (onlyIfCurrent !== undefined) upd = upd.where('current_version', '=', onlyIfCurrent);
    const row = await upd.returning(['current_version']).executeTakeFirst();
    if (!row) return this.get(ctx.db, keyId, false); // someone else rotated first
    const version = Number(row.current_version);
    const policy = this.deps.config.policies[key.key_type as KeyType];
    const resource = { type: 'kms_key', id: keyId };
    try {
      // pre-rotation: what the outgoing version protects
      const outgoing = await this.#version(ctx.db, keyId, version - 1);
      const lastBackupAt = (await this.deps.lastBackupAt?.(ctx.db)) ?? null;
      ctx.emit?.({ type: 'kms.rotation.pre_check', outcome: 'success', resource, details: { from_version: version - 1, ciphertexts: Number(outgoing.ciphertexts) - Number(outgoing.rewrapped_away), overlap_days: policy.overlapDays, last_backup_at: lastBackupAt } });
      // generation, then a health check of the new version before it is activated
      const fresh = await this.#newVersion(ctx.db, key, version, now);
      await this.#selfTest(ctx.db, key, fresh);
      ctx.emit?.({ type: 'kms.rotation.health_check', outcome: 'success', resource, details: { version } });
      await ctx.db.insertInto('kms_key_versions').values(fresh).execute();
      // the previous version stays active for the overlap, then the scheduler deactivates it; older ones now
      const until = new Date(Date.parse(now) + policy.overlapDays * DAY_MS).toISOString();
      await ctx.db.updateTable('kms_key_versions').set({ status: 'deprecated', deactivate_at: null }).where('key_id', '=', keyId).where('version', '<', version - 1).where('status', '=', 'active').execute();
      await ctx.db
        .updateTable('kms_key_versions')
        .set(policy.overlapDays > 0 ? { deactivate_at: until } : { status: 'deprecated', deactivate_at: null })
        .where('key_id', '=', keyId)
        .where('version', '=', version - 1)
        .where('status', '=', 'active')
        .execute();
    } catch (e) {
      this.deps.metrics.rotation(key.key_type, 'failure');
      throw e;
    }
    this.deps.metrics.rotation(key.key_type, 'success');
    if (reason !== 'manual') ctx.emit?.({ type: 'kms.key.rotate', outcome: 'success', resource, details: { reason, version } });
    return this.get(ctx.db, keyId, false);
  }

  /** Health check of a freshly generated version: it must round-trip before it is activated. */
  async #selfTest(db: Executor, key: KmsKeyTable, v: KmsKeyVersionTable): Promise<void> {
    const material = await this.#unwrap(db, v);
    const spec = ALGORITHM_SPECS[key.algorithm as Algorithm];
    const probe = randomBytes(32);
    let ok: boolean;
    if (spec.family === 'aead') {
      const iv = randomBytes(12);
      const sealed = aeadSeal(key.algorithm as 'AES-256-GCM', material, iv, probe, probe);
      ok = aeadOpen(key.algorithm as 'AES-256-GCM', material, iv, sealed.ciphertext, sealed.tag, probe).equals(probe);
    } else if (spec.family === 'signature') {
      ok = verifyMessage(key.algorithm as Algorithm, publicKeyFrom(v.public_key!), probe, signMessage(key.algorithm as Algorithm, privateKeyFrom(material), probe));
    } else {
      ok = constantTimeEqual(hmac(material, probe), hmac(material, probe));
    }
    material.fill(0);
    if (!ok) throw new PalisadeError('PAL_INTERNAL', `the new version ${v.version} of ${key.key_id} failed its health check; the rotation was not applied`);
  }

  /**
   * A rotation as its policy says: at once, or (KEKs and signing keys by default) as an approval request that a
   * different principal approves, which then rotates. An already pending request is returned, not duplicated.
   */
  async requestRotation(ctx: OpContext, keyId: string, requestedBy: string, reason: 'manual' | 'scheduled'): Promise<{ rotated: KeyMetadata } | { approval: Approval }> {
    const key = await this.#key(ctx.db, keyId);
    assertNotCaKey(key);
    if (!this.deps.config.policies[key.key_type as KeyType].approval) return { rotated: await this.rotate(ctx, keyId, reason) };
    if (key.status !== 'active') throw new PalisadeError('PAL_KMS_INVALID_STATE', `a ${key.status} key cannot be rotated`);
    const pending = await this.deps.approvals.pendingFor(ctx.db, 'kms.key.rotate', keyId);
    if (pending) return { approval: pending };
    const approval = await this.deps.approvals.request(ctx.db, {
      action: 'kms.key.rotate',
      permission: 'kms:keys:rotate',
      resource: { type: 'kms_key', id: keyId },
      requested_by: requestedBy,
      reason: reason === 'scheduled' ? 'rotation period reached' : 'requested',
      details: { key_type: key.key_type, name: key.name, from_version: key.current_version },
    });
    ctx.emit?.({ type: 'approval.request', outcome: 'success', resource: { type: 'approval', id: approval.id }, details: { action: approval.action, target: approval.resource } });
    return { approval };
  }

  /** After the overlap, previous versions become decrypt-only. */
  async deactivateDue(db: Executor, now: Date): Promise<Array<{ key_id: string; version: number }>> {
    const rows = await db.selectFrom('kms_key_versions').select(['key_id', 'version']).where('status', '=', 'active').where('deactivate_at', '<=', now.toISOString()).execute();
    for (const r of rows) {
      await db.updateTable('kms_key_versions').set({ status: 'deprecated', deactivate_at: null }).where('key_id', '=', r.key_id).where('version', '=', r.version).where('status', '=', 'active').execute();
    }
    return rows;
  }

  async setEnabled(ctx: OpContext, keyId: string, enabled: boolean): Promise<KeyMetadata> {
    const key = await this.#key(ctx.db, keyId);
    this.#assertNotSystem(key);
    const from: KeyStatus = enabled ? 'disabled' : 'active';
    if (key.status !== from) throw new PalisadeError('PAL_KMS_INVALID_STATE', `the key is ${key.status}; only a ${from} key can be ${enabled ? 'enabled' : 'disabled'}`);
    await ctx.db.updateTable('kms_keys').set({ status: enabled ? 'active' : 'disabled' }).where('key_id', '=', keyId).where('status', '=', from).execute();
    return this.get(ctx.db, keyId, false);
  }

  /**
   * Destruction behind the retirement gate: a key or version that may still protect data is refused, or with
   * `force` becomes an approval request for a second principal (whose approval schedules it).
   */
  async requestDestruction(ctx: OpContext, keyId: string, req: { pending_days: number; version?: number; force?: boolean }, requestedBy: string): Promise<{ scheduled: KeyMetadata } | { approval: Approval }> {
    const key = await this.#key(ctx.db, keyId);
    this.#assertNotDestroyed(key);
    assertNotCaKey(key);
    if (isSystemKey(key.name) && req.version === undefined) this.#assertNotSystem(key);
    if (req.version === key.current_version) throw new PalisadeError('PAL_KMS_CANNOT_DESTROY_CURRENT_VERSION');
    const use = await this.#inUse(ctx.db, key, req.version);
    const what = req.version === undefined ? `key ${keyId}` : `version ${req.version} of ${keyId}`;
    if (use.wrapped_keys > 0) {
      throw new PalisadeError('PAL_KMS_VERSION_IN_USE', `${use.wrapped_keys} key versions are still wrapped under ${what}; rotate and let the rewrap finish first`, { extensions: use });
    }
    if (use.ciphertexts > 0) {
      if (!req.force) throw new PalisadeError('PAL_KMS_VERSION_IN_USE', `${what} still protects ${use.ciphertexts} ciphertexts; rewrap them, or force with an approval`, { extensions: use });
      const pending = await this.deps.approvals.pendingFor(ctx.db, 'kms.key.destroy', keyId);
      if (pending) return { approval: pending };
      const approval = await this.deps.approvals.request(ctx.db, {
        action: 'kms.key.destroy',
        permission: 'kms:keys:destroy',
        resource: { type: 'kms_key', id: keyId },
        requested_by: requestedBy,
        reason: `forced destruction of ${what}, which may still protect data`,
        details: { pending_days: req.pending_days, version: req.version ?? null, ...use },
      });
      ctx.emit?.({ type: 'approval.request', outcome: 'success', resource: { type: 'approval', id: approval.id }, details: { action: approval.action, target: approval.resource } });
      return { approval };
    }
    return { scheduled: await this.scheduleDestruction(ctx, keyId, req.pending_days, req.version) };
  }

  async scheduleDestruction(ctx: OpContext, keyId: string, pendingDays: number, version?: number): Promise<KeyMetadata> {
    if (!Number.isInteger(pendingDays) || pendingDays < 7 || pendingDays > 30) throw new PalisadeError('PAL_KMS_INVALID_DESTRUCTION_WINDOW');
    const key = await this.#key(ctx.db, keyId);
    this.#assertNotDestroyed(key);
    if (version === undefined) this.#assertNotSystem(key);
    const at = new Date(this.#now().getTime() + pendingDays * DAY_MS).toISOString();
    if (version === undefined) {
      if (key.status === 'pending_destruction') throw new PalisadeError('PAL_KMS_INVALID_STATE', 'the key is already scheduled for destruction');
      await ctx.db.updateTable('kms_keys').set({ status: 'pending_destruction', status_before_destruction: key.status, destroy_at: at }).where('key_id', '=', keyId).execute();
    } else {
      const v = await this.#version(ctx.db, keyId, version);
      if (version === key.current_version) throw new PalisadeError('PAL_KMS_CANNOT_DESTROY_CURRENT_VERSION');
      if (v.status === 'destroyed' || v.status === 'pending_destruction') throw new PalisadeError('PAL_KMS_INVALID_STATE', `version ${version} is already ${v.status}`);
      await ctx.db.updateTable('kms_key_versions').set({ status: 'pending_destruction', destroy_at: at }).where('key_id', '=', keyId).where('version', '=', version).execute();
    }
    return this.get(ctx.db, keyId);
  }

  async cancelDestruction(ctx: OpContext, keyId: string, version?: number): Promise<KeyMetadata> {
    const key = await this.#key(ctx.db, keyId);
    if (version === undefined) {
      if (key.status !== 'pending_destruction') throw new PalisadeError('PAL_KMS_INVALID_STATE', 'the key is not scheduled for destruction');
      await ctx.db.updateTable('kms_keys').set({ status: key.status_before_destruction ?? 'active', status_before_destruction: null, destroy_at: null }).where('key_id', '=', keyId).execute();
    } else {
      const v = await this.#version(ctx.db, keyId, version);
      if (v.status !== 'pending_destruction') throw new PalisadeError('PAL_KMS_INVALID_STATE', `version ${version} is not scheduled for destruction`);
      await ctx.db.updateTable('kms_key_versions').set({ status: 'deprecated', destroy_at: null }).where('key_id', '=', keyId).where('version', '=', version).execute();
    }
    return this.get(ctx.db, keyId);
  }

  // ---------------------------------------------------------------- scheduled work

  /** Keys whose current version is older than their rotation period (or due by time), active only. */
  async dueForRotation(db: Executor, now: Date): Promise<KmsKeyTable[]> {
    const keys = await db.selectFrom('kms_keys').selectAll().where('status', '=', 'active').execute();
    return keys.filter((k) => !k.name?.startsWith(CA_KEY_PREFIX) && Date.parse(k.rotated_at) + k.rotation_period_days * DAY_MS <= now.getTime());
  }

  /** Erase key material whose destruction date has passed. Returns what was destroyed. */
  async destroyDue(db: Executor, now: Date): Promise<Array<{ key_id: string; version: number | null }>> {
    const at = now.toISOString();
    const out: Array<{ key_id: string; version: number | null }> = [];
    const keys = await db.selectFrom('kms_keys').select('key_id').where('status', '=', 'pending_destruction').where('destroy_at', '<=', at).execute();
    for (const k of keys) {
      await db.updateTable('kms_key_versions').set({ material: null, status: 'destroyed', destroy_at: at }).where('key_id', '=', k.key_id).execute();
      await db.updateTable('kms_keys').set({ status: 'destroyed', status_before_destruction: null }).where('key_id', '=', k.key_id).execute();
      this.#evict(k.key_id);
      out.push({ key_id: k.key_id, version: null });
    }
    const versions = await db.selectFrom('kms_key_versions').select(['key_id', 'version']).where('status', '=', 'pending_destruction').where('destroy_at', '<=', at).execute();
    for (const v of versions) {
      await db.updateTable('kms_key_versions').set({ material: null, status: 'destroyed' }).where('key_id', '=', v.key_id).where('version', '=', v.version).execute();
      this.#evict(v.key_id);
      out.push({ key_id: v.key_id, version: v.version });
    }
    return out;
  }

  #evict(keyId: string): void {
    for (const k of this.#material.keys()) if (k.startsWith(`${keyId}:`)) this.#material.delete(k);
    this.#budget.forget(keyId);
  }

  // ---------------------------------------------------------------- cryptographic operations

  async encrypt(ctx: OpContext, keyId: string, plaintext: Buffer, context?: Record<string, unknown>): Promise<EncryptedData> {
    const start = performance.now();
    let key: KmsKeyTable | undefined;
    try {
      key = await this.#usable(ctx.db, keyId, 'encrypt');
      const version = await this.#spendNonce(ctx, key);
      const material = await this.#secret(ctx.db, key, version);
      const iv = randomBytes(12);
      const { ciphertext, tag } = aeadSeal(key.algorithm as 'AES-256-GCM', material, iv, plaintext, aadFor(key.key_id, version, key.algorithm, context));
      this.deps.metrics.encryption(key.algorithm, key.key_type, 'success', 'encrypt', (performance.now() - start) / 1000);
      return { ciphertext: b64(ciphertext), iv: b64(iv), tag: b64(tag), key_id: key.key_id, key_version: version, algorithm: key.algorithm };
    } catch (e) {
      this.deps.metrics.encryption(key?.algorithm ?? 'unknown', key?.key_type ?? 'unknown', 'failure', 'encrypt', (performance.now() - start) / 1000);
      this.deps.metrics.failure(e, 'encrypt');
      throw e;
    }
  }

  async decrypt(db: Executor, keyId: string, data: EncryptedData, context?: Record<string, unknown>): Promise<Buffer> {
    const start = performance.now();
    let key: KmsKeyTable | undefined;
    try {
      key = await this.#usable(db, keyId, 'decrypt');
      const fail = () => new PalisadeError('PAL_KMS_DECRYPT_FAILED');
      if (data.key_id !== key.key_id || data.algorithm !== key.algorithm) throw fail();
      const iv = Buffer.from(data.iv, 'base64');
      const tag = Buffer.from(data.tag, 'base64');
      if (iv.length !== 12 || tag.length !== 16) throw fail();
      const { version } = await this.#decryptableVersion(db, key, data.key_version);
      const material = await this.#secret(db, key, version.version);
      let plaintext: Buffer;
      try {
        plaintext = aeadOpen(key.algorithm as 'AES-256-GCM', material, iv, Buffer.from(data.ciphertext, 'base64'), tag, aadFor(key.key_id, version.version, key.algorithm, context));
      } catch {
        throw fail();
      }
      this.deps.metrics.decryption(key.algorithm, key.key_type, 'success', (performance.now() - start) / 1000);
      return plaintext;
    } catch (e) {
      this.deps.metrics.decryption(key?.algorithm ?? 'unknown', key?.key_type ?? 'unknown', 'failure', (performance.now() - start) / 1000);
      this.deps.metrics.failure(e, 'decrypt');
      throw e;
    }
  }

  /** Envelope encryption: a fresh data key, returned in plaintext and wrapped under this key. */
  async dataKey(ctx: OpContext, keyId: string, bytes: number, context?: Record<string, unknown>): Promise<{ plaintext: string; ciphertext: EncryptedData }> {
    const dek = randomBytes(bytes);
    const ciphertext = await this.encrypt(ctx, keyId, dek, context);
    return { plaintext: b64(dek), ciphertext };
  }

  /** Ciphertext to the newest version without the plaintext leaving the server. */
  async rewrap(ctx: OpContext, keyId: string, data: EncryptedData, context?: Record<string, unknown>): Promise<EncryptedData> {
    const plaintext = await this.decrypt(ctx.db, keyId, data, context);
    try {
      const out = await this.encrypt(ctx, keyId, plaintext, context);
      if (out.key_version !== data.key_version) {
        await ctx.db.updateTable('kms_key_versions').set((eb) => ({ rewrapped_away: eb('rewrapped_away', '+', 1) })).where('key_id', '=', keyId).where('version', '=', data.key_version).execute();
      }
      return out;
    } finally {
      plaintext.fill(0);
    }
  }

  async sign(ctx: OpContext, keyId: string, message: Buffer): Promise<{ signature: string; key_id: string; key_version: number; algorithm: string }> {
    const key = await this.#usable(ctx.db, keyId, 'sign');
    const version = key.current_version;
    const material = await this.#material_(ctx.db, key, version);
    const signature = ALGORITHM_SPECS[key.algorithm as Algorithm].family === 'hmac' ? hmac(material as Buffer, message) : signMessage(key.algorithm as Algorithm, material as KeyObject, message);
    return { signature: b64(signature), key_id: key.key_id, key_version: version, algorithm: key.algorithm };
  }

  /** A signature by a system signing key (the audit checkpoint key): for the server itself, never reachable from the API. */
  async systemSign(db: Executor, name: string, message: Buffer): Promise<{ key_id: string; key_version: number; signature: Buffer; public_key_pem: string }> {
    if (!name.startsWith('system/') || name.startsWith(SYSTEM_KEK_PREFIX)) throw new PalisadeError('PAL_INTERNAL', `${name} is not a system signing key`);
    const key = await db.selectFrom('kms_keys').selectAll().where('name', '=', name).executeTakeFirst();
    if (!key) throw new PalisadeError('PAL_INTERNAL', `the system key ${name} does not exist yet`);
    const material = await this.#material_(db, key, key.current_version);
    const { public_key_pem } = await this.publicKey(db, key.key_id, key.current_version);
    return { key_id: key.key_id, key_version: key.current_version, signature: signMessage(key.algorithm as Algorithm, material as KeyObject, message), public_key_pem };
  }

  /**
   * A CA's signing key (`system/pki/...`): a system key that never rotates (a CA gets a new key by being replaced) and
   * that signs X.509 structures (PKCS#1 v1.5 for RSA, DER ECDSA). The caller audits it as part of the CA's creation.
   */
  async createCaKey(ctx: OpContext, name: string, algorithm: 'ECDSA-P256' | 'ECDSA-P384' | 'RSA-4096', lifetimeDays: number): Promise<{ key_id: string; public_key: Buffer }> {
    if (!name.startsWith(CA_KEY_PREFIX)) throw new PalisadeError('PAL_INTERNAL', `${name} is not a CA key name`);
    const meta = await this.#create(ctx, { key_type: 'signing', algorithm, classification: 'restricted', name, rotation_period_days: lifetimeDays });
    const v = await this.#version(ctx.db, meta.key_id, 1);
    return { key_id: meta.key_id, public_key: v.public_key! };
  }

  /** Sign an X.509 to-be-signed structure with a CA key (see createCaKey). */
  async caSign(db: Executor, name: string, tbs: Buffer): Promise<Buffer> {
    const key = await this.#caKey(db, name);
    const material = (await this.#material_(db, key, 1)) as KeyObject;
    return key.algorithm === 'RSA-4096' ? cryptoSign('sha256', tbs, { key: material, padding: constants.RSA_PKCS1_PADDING }) : signMessage(key.algorithm as Algorithm, material, tbs);
  }

  /**
   * Take a CA key offline: return it as an encrypted PKCS#8 PEM (PBES2, AES-256-CBC; `openssl pkey` reads it) and,
   * when `remove`, erase the material here so that only the holder of the file can sign with it again.
   */
  async exportCaKey(db: Executor, name: string, passphrase: string, remove: boolean): Promise<string> {
    const key = await this.#caKey(db, name);
    const material = (await this.#material_(db, key, 1)) as KeyObject;
    const pem = material.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase }).toString();
    if (remove) {
      await db.updateTable('kms_key_versions').set({ material: null, status: 'destroyed', destroy_at: this.#now().toISOString() }).where('key_id', '=', key.key_id).execute();
      await db.updateTable('kms_keys').set({ status: 'destroyed' }).where('key_id', '=', key.key_id).execute();
      this.#evict(key.key_id);
    }
    return pem;
  }

  async #caKey(db: Executor, name: string): Promise<KmsKeyTable> {
    if (!name.startsWith(CA_KEY_PREFIX)) throw new PalisadeError('PAL_INTERNAL', `${name} is not a CA key`);
    const key = await db.selectFrom('kms_keys').selectAll().where('name', '=', name).executeTakeFirst();
    if (!key || key.status === 'destroyed') throw new PalisadeError('PAL_PKI_CA_OFFLINE', `the key of this CA is not held by the server`);
    return key;
  }

  /** The public keys of every live version of a system signing key, oldest first (verifiers pin them all). */
  async systemPublicKeys(db: Executor, name: string): Promise<Array<{ key_id: string; key_version: number; public_key_pem: string }>> {
    const key = await db.selectFrom('kms_keys').select('key_id').where('name', '=', name).executeTakeFirst();
    if (!key) return [];
    const versions = await db.selectFrom('kms_key_versions').select(['version', 'public_key']).where('key_id', '=', key.key_id).where('public_key', 'is not', null).orderBy('version').execute();
    return versions.map((v) => ({ key_id: key.key_id, key_version: v.version, public_key_pem: publicKeyFrom(v.public_key!).export({ type: 'spki', format: 'pem' }).toString() }));
  }

  /** The version a system signing key signs with now (null before the key exists). */
  async systemKeyVersion(db: Executor, name: string): Promise<{ key_id: string; key_version: number } | null> {
    const key = await db.selectFrom('kms_keys').select(['key_id', 'current_version']).where('name', '=', name).executeTakeFirst();
    return key ? { key_id: key.key_id, key_version: key.current_version } : null;
  }

  async verify(db: Executor, keyId: string, message: Buffer, signature: Buffer, keyVersion?: number): Promise<{ valid: boolean; key_version: number }> {
    const key = await this.#usable(db, keyId, 'verify');
    const { version } = await this.#decryptableVersion(db, key, keyVersion ?? key.current_version, true);
    if (ALGORITHM_SPECS[key.algorithm as Algorithm].family === 'hmac') {
      const mac = hmac((await this.#material_(db, key, version.version)) as Buffer, message);
      return { valid: constantTimeEqual(mac, signature), key_version: version.version };
    }
    if (!version.public_key) throw new PalisadeError('PAL_KMS_KEY_DESTROYED');
    return { valid: verifyMessage(key.algorithm as Algorithm, publicKeyFrom(version.public_key), message, signature), key_version: version.version };
  }

  async publicKey(db: Executor, keyId: string, keyVersion?: number): Promise<{ key_id: string; key_version: number; algorithm: string; public_key_pem: string }> {
    const key = await this.#key(db, keyId);
    if (ALGORITHM_SPECS[key.algorithm as Algorithm].family !== 'signature') throw new PalisadeError('PAL_KMS_OPERATION_NOT_PERMITTED', `${key.algorithm} keys have no public key`);
    const v = await this.#version(db, keyId, keyVersion ?? key.current_version);
    if (!v.public_key) throw new PalisadeError('PAL_KMS_KEY_DESTROYED');
    const pem = publicKeyFrom(v.public_key).export({ type: 'spki', format: 'pem' }).toString();
    return { key_id: keyId, key_version: v.version, algorithm: key.algorithm, public_key_pem: pem };
  }

  // ---------------------------------------------------------------- internals

  async #key(db: Executor, keyId: string): Promise<KmsKeyTable> {
    const key = await db.selectFrom('kms_keys').selectAll().where('key_id', '=', keyId).executeTakeFirst();
    if (!key) throw new PalisadeError('PAL_KMS_KEY_NOT_FOUND', `no key ${keyId}`);
    return key;
  }

  async #version(db: Executor, keyId: string, version: number): Promise<KmsKeyVersionTable> {
    const v = await db.selectFrom('kms_key_versions').selectAll().where('key_id', '=', keyId).where('version', '=', version).executeTakeFirst();
    if (!v) throw new PalisadeError('PAL_KMS_VERSION_NOT_FOUND', `key ${keyId} has no version ${version}`);
    return v;
  }

  #assertNotDestroyed(key: KmsKeyTable): void {
    if (key.status === 'destroyed') throw new PalisadeError('PAL_KMS_KEY_DESTROYED', `key ${key.key_id} was destroyed`);
  }

  /** The key, if its state and usage allow `op`. */
  #assertNotSystem(key: KmsKeyTable): void {
    if (isSystemKey(key.name)) throw new PalisadeError('PAL_KMS_SYSTEM_KEY', `${key.name} wraps other keys; it can only be rotated`);
  }

  async #usable(db: Executor, keyId: string, op: Usage): Promise<KmsKeyTable> {
    const key = await this.#key(db, keyId);
    this.#assertNotDestroyed(key);
    this.#assertNotSystem(key);
    if (key.status === 'disabled') throw new PalisadeError('PAL_KMS_KEY_DISABLED', `key ${keyId} is disabled`);
    if (key.status === 'pending_destruction') throw new PalisadeError('PAL_KMS_KEY_PENDING_DESTRUCTION', `key ${keyId} is scheduled for destruction at ${key.destroy_at}`);
    const usage = JSON.parse(key.usage) as Usage[];
    if (!usage.includes(op)) throw new PalisadeError('PAL_KMS_OPERATION_NOT_PERMITTED', `key ${keyId} is not usable to ${op} (usage: ${usage.join(', ')})`);
    return key;
  }

  /** A version that may be used to decrypt/verify; unknown versions look like any other authentication failure. */
  async #decryptableVersion(db: Executor, key: KmsKeyTable, version: number, verifying = false): Promise<{ version: KmsKeyVersionTable }> {
    const v = await db.selectFrom('kms_key_versions').selectAll().where('key_id', '=', key.key_id).where('version', '=', version).executeTakeFirst();
    if (!v) throw verifying ? new PalisadeError('PAL_KMS_VERSION_NOT_FOUND') : new PalisadeError('PAL_KMS_DECRYPT_FAILED');
    if (v.status === 'destroyed' || !v.material) throw new PalisadeError('PAL_KMS_KEY_DESTROYED', `version ${version} of key ${key.key_id} was destroyed; data under it cannot be recovered`);
    if (v.status === 'pending_destruction') throw new PalisadeError('PAL_KMS_KEY_PENDING_DESTRUCTION', `version ${version} of key ${key.key_id} is scheduled for destruction at ${v.destroy_at}`);
    if (version < key.min_decryption_version) throw new PalisadeError('PAL_KMS_VERSION_BELOW_MINIMUM', `version ${version} is below the key's min_decryption_version ${key.min_decryption_version}`);
    return { version: v };
  }

  /** Spend one nonce of the current version, rotating first when its budget is exhausted. */
  async #spendNonce(ctx: OpContext, key: KmsKeyTable): Promise<number> {
    let current = key.current_version;
    for (let attempt = 0; attempt < 3; attempt++) {
      if (await this.#budget.take(ctx.db, key.key_id, current, ctx.onRollback)) {
        await ctx.db.updateTable('kms_key_versions').set((eb) => ({ ciphertexts: eb('ciphertexts', '+', 1) })).where('key_id', '=', key.key_id).where('version', '=', current).execute();
        return current;
      }
      const m = await this.rotate(ctx, key.key_id, 'nonce_limit', current);
      current = m.version;
    }
    throw new PalisadeError('PAL_INTERNAL', 'could not obtain an encryption budget after rotating');
  }

  async #secret(db: Executor, key: KmsKeyTable, version: number): Promise<Buffer> {
    return (await this.#material_(db, key, version)) as Buffer;
  }

  /** How many key versions each version of a KEK wraps. */
  async #wrappedCounts(db: Executor, kekId: string): Promise<Map<number, number>> {
    const rows = await db.selectFrom('kms_key_versions').select((eb) => ['kek_version', eb.fn.countAll<number>().as('n')]).where('kek_id', '=', kekId).where('material', 'is not', null).groupBy('kek_version').execute();
    return new Map(rows.map((r) => [Number(r.kek_version), Number(r.n)]));
  }

  /**
   * The retirement gate: what destroying these versions (all when `version` is undefined) would make unreadable.
   * Keys wrapped under a KEK version always block; ciphertexts made under it and not rewrapped away block unless
   * forced through an approval.
   */
  async #inUse(db: Executor, key: KmsKeyTable, version?: number): Promise<{ wrapped_keys: number; ciphertexts: number }> {
    let q = db.selectFrom('kms_key_versions').selectAll().where('key_id', '=', key.key_id).where('material', 'is not', null);
    if (version !== undefined) q = q.where('version', '=', version);
    const rows = await q.execute();
    const wrapped = key.key_type === 'KEK' ? await this.#wrappedCounts(db, key.key_id) : new Map<number, number>();
    return rows.reduce(
      (acc, v) => ({ wrapped_keys: acc.wrapped_keys + (wrapped.get(v.version) ?? 0), ciphertexts: acc.ciphertexts + Math.max(0, Number(v.ciphertexts) - Number(v.rewrapped_away)) }),
      { wrapped_keys: 0, ciphertexts: 0 },
    );
  }

  /** Where the key is in its rotation lifecycle: waiting for an approval, in the overlap of its previous version, or idle. */
  async #rotationState(db: Executor, key: KmsKeyTable): Promise<NonNullable<KeyMetadata['rotation']>> {
    const pending = await this.deps.approvals.pendingFor(db, 'kms.key.rotate', key.key_id);
    const overlap = await db.selectFrom('kms_key_versions').select('deactivate_at').where('key_id', '=', key.key_id).where('status', '=', 'active').where('deactivate_at', 'is not', null).orderBy('deactivate_at', 'desc').executeTakeFirst();
    const policy = this.deps.config.policies[key.key_type as KeyType];
    return {
      state: pending ? 'awaiting_approval' : overlap ? 'overlap' : 'idle',
      approval_id: pending?.id ?? null,
      overlap_until: overlap?.deactivate_at ?? null,
      policy: { approval: policy.approval, overlap_days: policy.overlapDays },
    };
  }

  /** Called after a system KEK rotation commits (the scheduler starts the background rewrap). */
  onKekRotated: () => void = () => undefined;
  kekRotated(): void {
    this.onKekRotated();
  }

  /** Drop every unwrapped key from memory (on seal). */
  forgetAll(): void {
    for (const m of this.#material.values()) if (Buffer.isBuffer(m)) m.fill(0);
    this.#material.clear();
    this.#kekBarriers.clear();
  }

  /** Unsealed material (Buffer for symmetric keys, KeyObject for private keys), cached per version. */
  async #material_(db: Executor, key: KmsKeyTable, version: number): Promise<Buffer | KeyObject> {
    const k = `${key.key_id}:${version}`;
    const hit = this.#material.get(k);
    if (hit) return hit;
    const v = await this.#version(db, key.key_id, version);
    if (!v.material || v.status === 'destroyed') throw new PalisadeError('PAL_KMS_KEY_DESTROYED', `version ${version} of key ${key.key_id} was destroyed`);
    const secret = await this.#unwrap(db, v);
    const value = ALGORITHM_SPECS[key.algorithm as Algorithm].family === 'signature' ? privateKeyFrom(secret) : secret;
    if (this.#material.size >= 10_000) this.#material.delete(this.#material.keys().next().value as string);
    this.#material.set(k, value);
    return value;
  }

  #metadata(key: KmsKeyTable, versions?: KmsKeyVersionTable[], wrapped: Map<number, number> = new Map()): KeyMetadata {
    return {
      key_id: key.key_id,
      name: key.name,
      key_type: key.key_type as KeyType,
      algorithm: key.algorithm as Algorithm,
      usage: JSON.parse(key.usage) as Usage[],
      classification: key.classification as Classification,
      version: key.current_version,
      min_decryption_version: key.min_decryption_version,
      status: key.status as KeyStatus,
      created_at: key.created_at,
      rotated_at: key.rotated_at,
      expires_at: new Date(Date.parse(key.rotated_at) + key.rotation_period_days * DAY_MS).toISOString(),
      rotation_period_days: key.rotation_period_days,
      destroy_at: key.destroy_at,
      origin: key.origin as 'generated' | 'imported',
      exportable: key.exportable === 1,
      ...(versions
        ? {
            versions: versions.map((v) => ({
              version: v.version,
              status: v.status as 'active',
              created_at: v.created_at,
              deactivate_at: v.deactivate_at,
              destroy_at: v.destroy_at,
              encryptions_reserved: Number(v.nonces_reserved),
              protects: { wrapped_keys: wrapped.get(v.version) ?? 0, ciphertexts: Math.max(0, Number(v.ciphertexts) - Number(v.rewrapped_away)) },
            })),
          }
        : {}),
    };
  }
}

export const SYSTEM_KEK_PREFIX = 'system/kek/';
/** Signs the audit log's checkpoints (C2SP signed notes). */
export const AUDIT_CHECKPOINT_KEY = 'system/audit/checkpoint';
export const TOKEN_SIGNING_KEY = 'system/identity/token-signing';
/** CA signing keys: never rotated by the scheduler (a CA is replaced, not re-keyed). */
export const CA_KEY_PREFIX = 'system/pki/';
const WRAPPING_KEY = 'kms.import_wrapping_key';
const kekName = (c: Classification) => `${SYSTEM_KEK_PREFIX}${c}`;
const isSystemKey = (name: string | null) => name?.startsWith('system/') ?? false;

/** A CA key changes only by replacing its CA (`palisade pki rotate-intermediate`), never through the KMS API. */
function assertNotCaKey(key: KmsKeyTable): void {
  if (key.name?.startsWith(CA_KEY_PREFIX)) throw new PalisadeError('PAL_KMS_SYSTEM_KEY', `${key.name} signs for a certificate authority: replace the CA instead (palisade pki rotate-intermediate)`);
}

function purpose(keyId: string, version: number): string {
  return `kms/${keyId}/${version}`;
}

function newKeyId(): string {
  return randomId('key');
}

// Field-level encryption (issue 5): fields of JSON records encrypted under DEKs named as the seed names them,
// `{data_type}_{classification}_{YYYYMM}`, obtained from the KMS's data-key API and cached (dek-cache.ts).
//
// Per field: salt (16 random bytes) and iv (12 random bytes); message key ‖ commitment = HKDF-SHA512(DEK, info =
// 'palisade field key and commitment v1' ‖ 0 ‖ salt), 32 + 32 bytes (the PRK is per DEK, so one HMAC per field);
// AES-256-GCM under the message key with AAD = canonical JSON of {v, record, path, dek, classification, data_type,
// encrypted_at}.
//
// Why a derived key per field rather than the DEK with a random IV: with the DEK directly, NIST SP 800-38D §8.3 limits
// a key to 2^32 random 96-bit IVs, and a repeated IV under one key loses confidentiality and the authenticity of
// everything under that key. A DEK here is shared by many fields (up to maxMessages, across processes that fetched
// nothing in common), so with derived keys every field has its own AES key: a nonce can only repeat if a 128-bit
// salt repeats too (around 2^48 fields give a 2^-32 chance), and maxMessages bounds the exposure of a DEK held in
// memory rather than a GCM limit. The same HKDF output yields the key commitment (as the AWS Encryption SDK's
// committing suites derive theirs): an envelope cannot be made to decrypt under two different DEKs, because the
// commitment is checked (in constant time) before any decryption.
import {
  AeadError,
  PalisadeError,
  aeadOpen,
  aeadSeal,
  canonicalBytes,
  constantTimeEqual,
  randomBytes,
  sha256,
  type EncryptedData,
} from '@palisade/core';
import { createHmac, createSecretKey, type KeyObject } from 'node:crypto';
import { DekCache, type DataKey, type DekCacheLimits } from './dek-cache.js';
import {
  COMMITMENT_BYTES,
  FIELD_ALGORITHM,
  IV_BYTES,
  SALT_BYTES,
  dekName,
  encodeEnvelope,
  parseEnvelope,
  type EnvelopeForm,
  type FieldEnvelope,
  type SealedField,
} from './envelope.js';
import { DATA_TYPE, compileSchema, formatPath, parsePath, schemaError, slots, type ClassificationSchema, type EncryptedClassification, type FieldClassification } from './schema.js';

/** What the encryptor needs of the KMS client (`client.kms` fits). */
export interface FieldKms {
  dataKey(keyId: string, opts: { context?: Record<string, unknown> }): Promise<{ plaintext: Buffer; ciphertext: EncryptedData }>;
  decrypt(keyId: string, data: EncryptedData, context?: Record<string, unknown>): Promise<Buffer>;
  getKey(keyId: string): Promise<{ version: number }>;
}

/** The KMS key (KEK) that wraps the DEKs of each encrypted classification. */
export type KekConfig = Partial<Record<EncryptedClassification, string>> | ((classification: EncryptedClassification) => string | undefined);

export interface FieldEncryptorOptions {
  kms: FieldKms;
  keys: KekConfig;
  cache?: DekCacheLimits;
  /** Time of encryption (DEK month, encrypted_at) and of cache ages. */
  clock?: () => Date;
  /** Form of new envelopes: the JSON object (default) or the compact `pf1.` string. */
  form?: EnvelopeForm;
}

export interface FieldBinding {
  /** The record's identity (e.g. its primary key): the ciphertext only decrypts for it. */
  recordId: string;
  /** The field's path in the schema (`ssn`, `items[*].card`): the ciphertext only decrypts for it. */
  path: string;
}

export interface ReencryptProgress {
  /** Records done so far, of `total`. */
  done: number;
  total: number;
  /** Fields re-encrypted so far, and fields found current. */
  reencrypted: number;
  current: number;
}

export interface ReencryptResult<T> {
  records: T[];
  reencrypted: number;
  current: number;
}

/** The KMS encryption context every DEK is wrapped under: unwrapping needs the same DEK name. */
export const DEK_CONTEXT_PURPOSE = 'palisade-field-dek';
/**
 * A field's message key and key commitment: HKDF-SHA512 (RFC 5869) of the DEK, the field's random salt in the info,
 * one 64-byte output block split in two. The extract step (the PRK) depends on the DEK alone, so it is done once per
 * DEK and kept; a field costs one HMAC-SHA512, not two full HKDFs.
 */
const HKDF_SALT = Buffer.from('palisade field keys v1', 'utf8');
const EXPAND_INFO = Buffer.from('palisade field key and commitment v1\0', 'utf8');
const BLOCK_1 = Buffer.of(1);
const MAX_PRKS = 1024;

/**
 * Salt and IV bytes, taken front to back from 4 KiB drawn from the CSPRNG at a time: one randomFillSync per field
 * cost more than its AES-GCM. A pool is never refilled in place (a new one is drawn), so bytes are used once and the
 * views handed out stay valid.
 */
let randomPool: Buffer = Buffer.alloc(0);
let randomOffset = 0;
function fieldRandom(n: number): Buffer {
  if (randomOffset + n > randomPool.length) {
    randomPool = randomBytes(4096);
    randomOffset = 0;
  }
  const out = randomPool.subarray(randomOffset, randomOffset + n);
  randomOffset += n;
  return out;
}

function expand(prk: KeyObject, salt: Buffer): { messageKey: Buffer; commitment: Buffer } {
  const okm = createHmac('sha512', prk).update(EXPAND_INFO).update(salt).update(BLOCK_1).digest();
  return { messageKey: okm.subarray(0, 32), commitment: okm.subarray(32, 32 + COMMITMENT_BYTES) };
}
/** KMS answers to an unwrap that mean "this wrapped key is not what it claims" rather than "the KMS is unavailable". */
const UNWRAP_INTEGRITY = new Set(['PAL_KMS_DECRYPT_FAILED', 'PAL_KMS_KEY_NOT_FOUND', 'PAL_KMS_VERSION_NOT_FOUND', 'PAL_VALIDATION_FAILED']);

const ctxFor = (name: string) => ({ purpose: DEK_CONTEXT_PURPOSE, dek: name });

function decryptFailed(b: FieldBinding, at: string, why: string, cause?: unknown): PalisadeError {
  return new PalisadeError('PAL_FIELD_DECRYPT_FAILED', `field ${at} of record ${JSON.stringify(b.recordId)} ${why}`, { extensions: { path: at, record_id: b.recordId }, ...(cause === undefined ? {} : { cause }) });
}
const MOVED_OR_TAMPERED = 'does not decrypt for this record and field (moved from another record or field, or tampered)';

function wrappedBytes(w: EncryptedData): Buffer {
  const iv = Buffer.from(w.iv, 'base64');
  const tag = Buffer.from(w.tag, 'base64');
  if (iv.length !== 12 || tag.length !== 16) throw new Error('the KMS returned a wrapped key of an unexpected shape');
  return Buffer.concat([iv, Buffer.from(w.ciphertext, 'base64'), tag]);
}

/** The cache key of a wrapped DEK: everything the KMS unwrap depends on. */
function wrapHash(f: Pick<SealedField, 'dek' | 'kek_id' | 'kek_version' | 'kek_algorithm' | 'wrapped_key'>): string {
  return sha256(canonicalBytes({ dek: f.dek, kek_id: f.kek_id, kek_version: f.kek_version, kek_algorithm: f.kek_algorithm, wrapped_key: f.wrapped_key.toString('base64') })).toString('base64');
}

function aad(recordId: string, path: string, f: Pick<SealedField, 'dek' | 'classification' | 'data_type' | 'encrypted_at'>): Buffer {
  return canonicalBytes({ v: 1, record: recordId, path, dek: f.dek, classification: f.classification, data_type: f.data_type, encrypted_at: f.encrypted_at });
}

function normalizePath(path: string): string {
  return formatPath(parsePath(path));
}

function checkRecordId(recordId: unknown): string {
  if (typeof recordId !== 'string' || recordId.length === 0) throw schemaError('recordId must be a non-empty string (the record\'s identity the fields are bound to)');
  return recordId;
}

/**
 * Encrypts and decrypts fields of JSON records. One instance per process (or per tenant) so that its cache works:
 * `new FieldEncryptor({ kms: client.kms, keys: { confidential: kekId, restricted: kekId } })` or `client.fields({...})`.
 */
export class FieldEncryptor {
  readonly cache: DekCache;
  readonly #kms: FieldKms;
  readonly #keys: KekConfig;
  readonly #clock: () => Date;
  readonly #form: EnvelopeForm;
  readonly #prks = new Map<string, KeyObject>();

  constructor(opts: FieldEncryptorOptions) {
    if (!opts?.kms) throw new TypeError('FieldEncryptor: kms is required (client.kms)');
    if (!opts.keys) throw new TypeError('FieldEncryptor: keys is required (the KMS key of each classification)');
    this.#kms = opts.kms;
    this.#keys = opts.keys;
    this.#clock = opts.clock ?? (() => new Date());
    this.#form = opts.form ?? 'json';
    this.cache = new DekCache(opts.cache, () => this.#clock().getTime());
  }

  /** The KMS key that wraps the DEKs of this classification; PAL_FIELD_SCHEMA_INVALID when none is configured. */
  kekFor(classification: EncryptedClassification): string {
    const id = typeof this.#keys === 'function' ? this.#keys(classification) : this.#keys[classification];
    if (typeof id !== 'string' || id.length === 0) throw schemaError(`no KMS key is configured for classification ${classification}`, { classification });
    return id;
  }

  /** The name of the DEK new `data_type`/`classification` fields are encrypted under now. */
  currentDekName(dataType: string, classification: EncryptedClassification): string {
    return dekName(dataType, classification, this.#clock());
  }

  /** Encrypts one JSON value (any JSON type) bound to `recordId` and `path`; the seed's envelope, or its compact string. */
  async encryptField(value: unknown, opts: FieldBinding & { classification: FieldClassification; data_type: string; form?: EnvelopeForm }): Promise<FieldEnvelope | string> {
    if (opts.classification === 'public') throw schemaError('public fields are not encrypted');
    if (!['internal', 'confidential', 'restricted'].includes(opts.classification)) throw schemaError(`unknown classification ${String(opts.classification)}`);
    if (typeof opts.data_type !== 'string' || !DATA_TYPE.test(opts.data_type)) throw schemaError(`data_type must match ${DATA_TYPE.source}`);
    const sealed = await this.#seal(value, checkRecordId(opts.recordId), normalizePath(opts.path), opts.path, opts.classification, opts.data_type);
    return encodeEnvelope(sealed, opts.form ?? this.#form);
  }

  /**
   * Decrypts one field (either form) bound to `recordId` and `path`. With `classification`/`data_type`, the envelope
   * must carry those (a schema's expectation); PAL_FIELD_DECRYPT_FAILED or PAL_FIELD_ENVELOPE_INVALID otherwise.
   */
  async decryptField(envelope: unknown, opts: FieldBinding & { classification?: FieldClassification; data_type?: string }): Promise<unknown> {
    const binding = { recordId: checkRecordId(opts.recordId), path: normalizePath(opts.path) };
    const { field } = parseEnvelope(envelope, opts.path);
    return this.#open(field, binding, opts.path, opts.classification, opts.data_type);
  }

  /** A copy of `record` with the schema's non-public fields replaced by envelopes bound to `recordId` and their path. */
  async encryptFields<T>(record: T, schema: ClassificationSchema, opts: { recordId: string; form?: EnvelopeForm }): Promise<T> {
    const fields = compileSchema(schema);
    const recordId = checkRecordId(opts.recordId);
    const out = structuredClone(record);
    for (const f of fields) {
      for (const slot of slots(out, f)) {
        const sealed = await this.#seal(slot.value, recordId, f.path, slot.at, f.classification, f.data_type);
        slot.set(encodeEnvelope(sealed, opts.form ?? this.#form));
      }
    }
    return out;
  }

  /** A copy of `record` with every encrypted field (either form) decrypted; every field the schema encrypts must be an envelope. */
  async decryptFields<T>(record: T, schema: ClassificationSchema, opts: { recordId: string }): Promise<T> {
    const fields = compileSchema(schema);
    const recordId = checkRecordId(opts.recordId);
    const out = structuredClone(record);
    for (const f of fields) {
      for (const slot of slots(out, f)) {
        const { field } = parseEnvelope(slot.value, slot.at);
        slot.set(await this.#open(field, { recordId, path: f.path }, slot.at, f.classification, f.data_type));
      }
    }
    return out;
  }

  /**
   * Moves records to current keys: a field is re-encrypted (in its own form) when its DEK is of an earlier month,
   * or its KMS key is no longer the one configured for its classification, or that key has been rotated since
   * (its wrapped DEK is under an older version). Other fields are left as they are. Records are returned in order.
   */
  async reencrypt<T>(records: readonly T[], schema: ClassificationSchema, opts: { recordId: (record: T) => string; onProgress?: (p: ReencryptProgress) => void }): Promise<ReencryptResult<T>> {
    const fields = compileSchema(schema);
    const versions = new Map<string, Promise<number>>();
    const currentVersion = (kek: string) => {
      let v = versions.get(kek);
      if (!v) versions.set(kek, (v = this.#kms.getKey(kek).then((k) => k.version)));
      return v;
    };
    const progress: ReencryptProgress = { done: 0, total: records.length, reencrypted: 0, current: 0 };
    const out: T[] = [];
    for (const record of records) {
      const recordId = checkRecordId(opts.recordId(record));
      const copy = structuredClone(record);
      for (const f of fields) {
        const kek = this.kekFor(f.classification);
        for (const slot of slots(copy, f)) {
          const { field, form } = parseEnvelope(slot.value, slot.at);
          const version = await currentVersion(kek);
          const stale = field.dek !== this.currentDekName(f.data_type, f.classification) || field.kek_id !== kek || field.kek_version < version;
          if (!stale) {
            progress.current += 1;
            continue;
          }
          const value = await this.#open(field, { recordId, path: f.path }, slot.at, f.classification, f.data_type);
          slot.set(encodeEnvelope(await this.#seal(value, recordId, f.path, slot.at, f.classification, f.data_type, version), form));
          progress.reencrypted += 1;
        }
      }
      out.push(copy);
      progress.done += 1;
      opts.onProgress?.({ ...progress });
    }
    return { records: out, reencrypted: progress.reencrypted, current: progress.current };
  }

  /** The HKDF PRK of a DEK, by its wrapped form (iv + ciphertext, base64): as secret as the DEK, kept as long (bounded). */
  #prk(dek: Buffer, wrapped: string): KeyObject {
    let prk = this.#prks.get(wrapped);
    if (!prk) {
      prk = createSecretKey(createHmac('sha512', HKDF_SALT).update(dek).digest());
      if (this.#prks.size >= MAX_PRKS) this.#prks.delete(this.#prks.keys().next().value as string);
      this.#prks.set(wrapped, prk);
    }
    return prk;
  }

  async #fetchDataKey(kek: string, name: string): Promise<DataKey> {
    const r = await this.#kms.dataKey(kek, { context: ctxFor(name) });
    if (r.plaintext.length !== 32) throw new Error(`the KMS returned a ${r.plaintext.length}-byte data key; AES-256 needs 32`);
    return { dek: r.plaintext, wrapped: r.ciphertext };
  }

  async #seal(value: unknown, recordId: string, path: string, at: string, classification: EncryptedClassification, dataType: string, minKekVersion = 1): Promise<SealedField> {
    let plaintext: Buffer;
    try {
      plaintext = canonicalBytes(value);
    } catch (e) {
      throw schemaError(`field ${at}: the value is not JSON data (${(e as Error).message})`, { path: at });
    }
    const now = this.#clock();
    const name = dekName(dataType, classification, now);
    const kek = this.kekFor(classification);
    const key = await this.cache.acquire(
      name,
      plaintext.length,
      () => this.#fetchDataKey(kek, name),
      {
        // What was just wrapped can be read back without an unwrap call.
        onFresh: (k) => this.cache.putDecryption(wrapHash({ dek: name, kek_id: k.wrapped.key_id, kek_version: k.wrapped.key_version, kek_algorithm: k.wrapped.algorithm, wrapped_key: wrappedBytes(k.wrapped) }), k.dek),
        // A cached DEK wrapped under another KMS key (the configuration changed) or, when re-encrypting, under an
        // older version of it than the current one, is not used for new fields.
        accept: (k) => k.wrapped.key_id === kek && k.wrapped.key_version >= minKekVersion,
      },
    );
    const random = fieldRandom(SALT_BYTES + IV_BYTES);
    const salt = random.subarray(0, SALT_BYTES);
    const iv = random.subarray(SALT_BYTES);
    const { messageKey, commitment: okmCommitment } = expand(this.#prk(key.dek, key.wrapped.iv + key.wrapped.ciphertext), salt);
    const commitment = Buffer.from(okmCommitment);
    key.dek.fill(0);
    const head = { dek: name, classification, data_type: dataType, encrypted_at: now.toISOString() };
    try {
      const { ciphertext, tag } = aeadSeal(FIELD_ALGORITHM, messageKey, iv, plaintext, aad(recordId, path, head));
      return { ...head, kek_id: key.wrapped.key_id, kek_version: key.wrapped.key_version, kek_algorithm: key.wrapped.algorithm, wrapped_key: wrappedBytes(key.wrapped), salt, commitment, iv, ciphertext, tag };
    } finally {
      messageKey.fill(0);
      plaintext.fill(0);
    }
  }

  async #unwrap(f: SealedField, b: FieldBinding, at: string): Promise<Buffer> {
    const w = f.wrapped_key;
    const wrapped: EncryptedData = {
      key_id: f.kek_id,
      key_version: f.kek_version,
      algorithm: f.kek_algorithm,
      iv: w.subarray(0, 12).toString('base64'),
      ciphertext: w.subarray(12, w.length - 16).toString('base64'),
      tag: w.subarray(w.length - 16).toString('base64'),
    };
    try {
      return await this.#kms.decrypt(f.kek_id, wrapped, ctxFor(f.dek));
    } catch (e) {
      const code = (e as { code?: unknown }).code;
      if (typeof code === 'string' && UNWRAP_INTEGRITY.has(code)) {
        throw decryptFailed(b, at, `does not decrypt: its data key does not unwrap under KMS key ${f.kek_id} v${f.kek_version} (${code}; tampered, or the key is gone)`, e);
      }
      throw e; // the KMS is unreachable, sealed, the key disabled or destroyed, or this principal may not decrypt: said as it is
    }
  }

  async #open(f: SealedField, b: FieldBinding, at: string, classification?: FieldClassification, dataType?: string): Promise<unknown> {
    if (classification !== undefined && f.classification !== classification) {
      throw decryptFailed(b, at, `is classified ${f.classification}, the schema says ${classification} (moved from another field, or tampered)`);
    }
    if (dataType !== undefined && f.data_type !== dataType) {
      throw decryptFailed(b, at, `holds data type ${f.data_type}, the schema says ${dataType} (moved from another field, or tampered)`);
    }
    const dek = await this.cache.unwrap(wrapHash(f), () => this.#unwrap(f, b, at));
    let messageKey: Buffer | undefined;
    try {
      if (dek.length !== 32) throw decryptFailed(b, at, MOVED_OR_TAMPERED);
      const w = f.wrapped_key;
      const derived = expand(this.#prk(dek, w.subarray(0, 12).toString('base64') + w.subarray(12, w.length - 16).toString('base64')), f.salt);
      messageKey = derived.messageKey;
      if (!constantTimeEqual(derived.commitment, f.commitment)) throw decryptFailed(b, at, MOVED_OR_TAMPERED);
      let plaintext: Buffer;
      try {
        plaintext = aeadOpen(FIELD_ALGORITHM, messageKey, f.iv, f.ciphertext, f.tag, aad(b.recordId, b.path, f));
      } catch (e) {
        if (e instanceof AeadError) throw decryptFailed(b, at, MOVED_OR_TAMPERED, e);
        throw e;
      }
      try {
        return JSON.parse(plaintext.toString('utf8')) as unknown;
      } finally {
        plaintext.fill(0);
      }
    } finally {
      dek.fill(0);
      messageKey?.fill(0);
    }
  }
}

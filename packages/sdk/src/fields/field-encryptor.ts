// Field-level encryption (issue 5): fields of JSON records encrypted under DEKs named as the seed names them,
// `{data_type}_{classification}_{YYYYMM}`, obtained from the KMS's data-key API and cached (dek-cache.ts).
//
// Format version 2. When a DEK enters the cache (fetched to encrypt, or unwrapped to decrypt) it is derived, once,
// into the AES-256-GCM key of its fields and a 32-byte key commitment (HKDF-SHA512 with distinct labels, field-key.ts).
// A field is then one AES-256-GCM encryption under that key with a random 96-bit IV, its AAD binding the format
// version, the DEK name (data type, classification, month), encrypted_at, the record id and the field's schema path.
// Decryption compares the envelope's commitment with the DEK's in constant time before the AEAD, so an envelope
// cannot be opened under any other key (as the AWS Encryption SDK's committing suites do).
//
// Why one key per DEK rather than one per field (format version 1 derived a key per field from a random salt): a
// field key is one AES-GCM key for all the DEK's fields, so NIST SP 800-38D §8.3's bound for random IVs applies — at
// most 2^32 encryptions per key. A DEK encrypts only in the process that fetched it (the KMS hands out a fresh random
// DEK per data-key call; an unwrapped DEK only decrypts), and that process's cache counts its fields: maxMessages
// defaults to 10^6 and cannot be set above 2^32. At 10^6 fields the chance of any IV repeating is below 2^-58. An
// HMAC per field (the salted derivation) cost more than the AES-GCM of a 1 KiB field; see ADR 0013.
//
// The hot paths do no KMS call, no HKDF and no JSON for strings: a cache hit is a map lookup (encryption by DEK name,
// decryption by the compact key part or the JSON wrapped_key, whose other members must then equal the cached key's),
// strict base64 without a regex, one AES-GCM, and the value (strings as UTF-8, other JSON values as canonical JSON,
// a kind byte in front). Anything unusual takes the full path, which validates everything and says what is wrong.
import { PalisadeError, canonicalBytes, keepWrapperPrototypesFast, type EncryptedData } from '@palisade/core';
import { createCipheriv, createDecipheriv, timingSafeEqual } from 'node:crypto';
import { DekCache, type DekCacheLimits } from './dek-cache.js';
import {
  COMPACT_PREFIX,
  FIELD_ALGORITHM,
  IV_BYTES,
  SEAL_BYTES,
  SEAL_COMMITMENT,
  SEAL_IV,
  SEAL_TAG,
  SEAL_TIME,
  TAG_BYTES,
  TIME_BYTES,
  dekName,
  encodeKeyPart,
  hasJsonMemberCount,
  isJsonEnvelope,
  isoMs,
  JsonEnvelope,
  parseEnvelope,
  scratchView,
  decodeBase64urlAt,
  strictDecode,
  type EnvelopeForm,
  type FieldEnvelope,
  type SealedField,
} from './envelope.js';
import { FieldKey, VALUE_JSON, VALUE_STRING, fieldAad, isWellFormed, jsonPlaintext, poolRandom, stringPlaintext, stringPlaintextScratch, wrappedBytes, wrappedData } from './field-key.js';
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
  /** Form of new envelopes: the JSON object (default) or the compact `pf2.` string. */
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

/** KMS answers to an unwrap that mean "this wrapped key is not what it claims" rather than "the KMS is unavailable". */
const UNWRAP_INTEGRITY = new Set(['PAL_KMS_DECRYPT_FAILED', 'PAL_KMS_KEY_NOT_FOUND', 'PAL_KMS_VERSION_NOT_FOUND', 'PAL_VALIDATION_FAILED']);
const ENCRYPTED_CLASSIFICATIONS: ReadonlySet<string> = new Set(['internal', 'confidential', 'restricted']);
const GCM = 'aes-256-gcm';
const DECIPHER_OPTIONS = { authTagLength: TAG_BYTES } as const;
const PREFIX_DOT = `${COMPACT_PREFIX}.`;
const MAX_PATHS = 4096;
/** Reused by the cached path to decode an envelope's fixed-size members into (no allocation per field). */
const IV_SCRATCH = Buffer.alloc(IV_BYTES);
const TAG_SCRATCH = Buffer.alloc(TAG_BYTES);
/** The compact form's seal part, decoded (with fixed views of its members) and encoded. */
const SEAL_IN = Buffer.alloc(SEAL_BYTES);
const SEAL_IN_COMMITMENT = SEAL_IN.subarray(SEAL_COMMITMENT, SEAL_TIME);
const SEAL_IN_IV = SEAL_IN.subarray(SEAL_IV, SEAL_TAG);
const SEAL_IN_TAG = SEAL_IN.subarray(SEAL_TAG, SEAL_BYTES);
const SEAL_OUT = Buffer.alloc(SEAL_BYTES);
const SEAL_CHARS = (SEAL_BYTES * 4) / 3;
/** What the cached path returns when it cannot answer: the full path runs. */
const MISS: unique symbol = Symbol('miss');

const ctxFor = (name: string) => ({ purpose: DEK_CONTEXT_PURPOSE, dek: name });

function decryptFailed(b: FieldBinding, at: string, why: string, cause?: unknown): PalisadeError {
  return new PalisadeError('PAL_FIELD_DECRYPT_FAILED', `field ${at} of record ${JSON.stringify(b.recordId)} ${why}`, { extensions: { path: at, record_id: b.recordId }, ...(cause === undefined ? {} : { cause }) });
}
/** Equal strings, compared in time independent of where they differ (only the length can leak). */
function sameText(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return d === 0;
}

const MOVED_OR_TAMPERED = 'does not decrypt for this record and field (moved from another record or field, or tampered)';

/** An unwrap that failed because of the envelope (said per caller: concurrent callers share one unwrap). */
class UnwrapRefused extends Error {}

function checkRecordId(recordId: unknown): string {
  if (typeof recordId !== 'string' || recordId.length === 0) throw schemaError('recordId must be a non-empty string (the record\'s identity the fields are bound to)');
  if (!isWellFormed(recordId)) throw schemaError('recordId must be well-formed Unicode (it has a lone surrogate)');
  return recordId;
}

/** The value of an authenticated plaintext (kind byte ‖ encoding). */
function decodeValue(pt: Buffer, b: FieldBinding, at: string): unknown {
  const kind = pt.length > 0 ? pt[0] : -1;
  if (kind === VALUE_STRING) return pt.toString('utf8', 1);
  if (kind === VALUE_JSON) {
    try {
      return JSON.parse(pt.toString('utf8', 1)) as unknown;
    } catch {
      throw decryptFailed(b, at, 'holds a value that is not JSON');
    }
  }
  throw decryptFailed(b, at, 'holds a value of a kind this SDK does not know');
}

/**
 * Encrypts and decrypts fields of JSON records. One instance per process (or per tenant) so that its cache works:
 * `new FieldEncryptor({ kms: client.kms, keys: { confidential: kekId, restricted: kekId } })` or `client.fields({...})`.
 */
export class FieldEncryptor {
  readonly cache: DekCache<FieldKey>;
  readonly #kms: FieldKms;
  readonly #keys: KekConfig;
  readonly #clock: () => Date;
  readonly #now: () => number;
  readonly #form: EnvelopeForm;
  /** Paths as given → their canonical form (bounded). */
  readonly #paths = new Map<string, string>();
  /** The month of the last DEK name made, and the last encrypted_at: both change rarely from one field to the next. */
  #month: { from: number; to: number; suffix: string; names: Record<EncryptedClassification, Map<string, string>> } = { from: 0, to: 0, suffix: '', names: { internal: new Map(), confidential: new Map(), restricted: new Map() } };
  #isoMs = NaN;
  #isoText = ''; // (always new Date(#isoMs).toISOString(), or '' with NaN)
  /** The last compact key part and JSON wrapped_key found in the cache (its own strings, whose hash V8 has computed). */
  #lastKeyPart = '';
  #lastWrapped = '';

  constructor(opts: FieldEncryptorOptions) {
    if (!opts?.kms) throw new TypeError('FieldEncryptor: kms is required (client.kms)');
    if (!opts.keys) throw new TypeError('FieldEncryptor: keys is required (the KMS key of each classification)');
    this.#kms = opts.kms;
    this.#keys = opts.keys;
    const clock = opts.clock;
    this.#clock = clock ?? (() => new Date());
    this.#now = clock ? () => clock().getTime() : Date.now;
    this.#form = opts.form ?? 'json';
    this.cache = new DekCache<FieldKey>(opts.cache, this.#now);
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
    if (!ENCRYPTED_CLASSIFICATIONS.has(opts.classification)) throw schemaError(`unknown classification ${String(opts.classification)}`);
    if (typeof opts.data_type !== 'string' || !DATA_TYPE.test(opts.data_type)) throw schemaError(`data_type must match ${DATA_TYPE.source}`);
    return this.#seal(value, checkRecordId(opts.recordId), this.#path(opts.path), opts.path, opts.classification, opts.data_type, opts.form ?? this.#form);
  }

  /**
   * Decrypts one field (either form) bound to `recordId` and `path`. With `classification`/`data_type`, the envelope
   * must carry those (a schema's expectation); PAL_FIELD_DECRYPT_FAILED or PAL_FIELD_ENVELOPE_INVALID otherwise.
   */
  async decryptField(envelope: unknown, opts: FieldBinding & { classification?: FieldClassification; data_type?: string }): Promise<unknown> {
    const binding = { recordId: checkRecordId(opts.recordId), path: this.#path(opts.path) };
    return this.#decrypt(envelope, binding, opts.path, opts.classification, opts.data_type);
  }

  /** A copy of `record` with the schema's non-public fields replaced by envelopes bound to `recordId` and their path. */
  async encryptFields<T>(record: T, schema: ClassificationSchema, opts: { recordId: string; form?: EnvelopeForm }): Promise<T> {
    const fields = compileSchema(schema);
    const recordId = checkRecordId(opts.recordId);
    const out = structuredClone(record);
    for (const f of fields) {
      for (const slot of slots(out, f)) {
        slot.set(await this.#seal(slot.value, recordId, f.path, slot.at, f.classification, f.data_type, opts.form ?? this.#form));
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
        slot.set(await this.#decrypt(slot.value, { recordId, path: f.path }, slot.at, f.classification, f.data_type));
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
          slot.set(await this.#seal(value, recordId, f.path, slot.at, f.classification, f.data_type, form, version));
          progress.reencrypted += 1;
        }
      }
      out.push(copy);
      progress.done += 1;
      opts.onProgress?.({ ...progress });
    }
    return { records: out, reencrypted: progress.reencrypted, current: progress.current };
  }

  // ---------------------------------------------------------------------------------------------- encryption

  #seal(value: unknown, recordId: string, path: string, at: string, classification: EncryptedClassification, dataType: string, form: EnvelopeForm, minKekVersion = 1): FieldEnvelope | string | Promise<FieldEnvelope | string> {
    // A string (without a lone surrogate) is its UTF-8; any other JSON value its canonical JSON (RFC 8785).
    const isString = typeof value === 'string' && isWellFormed(value);
    let json: Buffer | undefined;
    if (!isString) {
      try {
        json = canonicalBytes(value);
      } catch (e) {
        throw schemaError(`field ${at}: the value is not JSON data (${(e as Error).message})`, { path: at });
      }
    }
    try {
      const bytes = json ? json.length : Buffer.byteLength(value as string, 'utf8');
      const ms = this.#now();
      if (!(ms >= 0 && ms < 2 ** 48)) throw new RangeError('FieldEncryptor: the clock is before 1970 or after the year 10889 (encrypted_at is 48-bit milliseconds)');
      const name = this.#dekName(dataType, classification, ms);
      const kek = this.kekFor(classification);
      // A cached DEK wrapped under another KMS key (the configuration changed) or, when re-encrypting, under an
      // older version of it than the current one, is not used for new fields.
      const accept = (k: FieldKey) => k.part.kek_id === kek && k.part.kek_version >= minKekVersion;
      const cached = this.cache.take(name, bytes, accept);
      if (cached) {
        // Encrypted now, before any await: a string's plaintext can go through the reused buffer.
        const pt = json ? jsonPlaintext(json) : (stringPlaintextScratch(value as string, bytes) ?? stringPlaintext(value as string)!);
        try {
          return this.#sealWith(cached, pt, ms, recordId, path, form);
        } finally {
          pt.fill(0);
        }
      }
      const pt = json ? jsonPlaintext(json) : stringPlaintext(value as string)!;
      return this.cache.acquire(name, bytes, () => this.#fetchKey(kek, name), (k) => this.#sealWith(k, pt, ms, recordId, path, form), accept).finally(() => pt.fill(0));
    } finally {
      json?.fill(0); // (the plaintext buffers are copies)
    }
  }

  #sealWith(k: FieldKey, plaintext: Buffer, ms: number, recordId: string, path: string, form: EnvelopeForm): FieldEnvelope | string {
    const iv = poolRandom(IV_BYTES);
    const cipher = createCipheriv(GCM, k.key, iv);
    cipher.setAAD(fieldAad(k.aadHead, ms, recordId, path));
    const ciphertext = cipher.update(plaintext);
    cipher.final();
    const tag = cipher.getAuthTag();
    if (form === 'compact') {
      const seal = SEAL_OUT; // used before this returns
      k.part.commitment.copy(seal, SEAL_COMMITMENT);
      seal.writeUIntBE(ms, SEAL_TIME, TIME_BYTES);
      iv.copy(seal, SEAL_IV);
      tag.copy(seal, SEAL_TAG);
      return `${PREFIX_DOT}${k.id}.${seal.toString('base64url')}.${ciphertext.toString('base64url')}`;
    }
    const p = k.part;
    return new JsonEnvelope(ciphertext.toString('base64'), iv.toString('base64'), tag.toString('base64'), p.dek, k.classification, k.dataType, this.#isoOf(ms), p.kek_id, p.kek_version, p.kek_algorithm, k.wrappedBase64, k.commitmentBase64);
  }

  async #fetchKey(kek: string, name: string): Promise<FieldKey> {
    const r = await this.#kms.dataKey(kek, { context: ctxFor(name) });
    // Every key enters the cache here or in #unwrapKey, after the application's modules have loaded: if one of them
    // (ioredis 6, say) left String.prototype in V8's slow mode, costing these paths a quarter of their speed, it is
    // undone now (core runtime/fast-prototypes.ts, ADR 0016).
    keepWrapperPrototypesFast();
    try {
      if (r.plaintext.length !== 32) throw new Error(`the KMS returned a ${r.plaintext.length}-byte data key; AES-256 needs 32`);
      const w = r.ciphertext;
      const k = FieldKey.derive(r.plaintext, { dek: name, kek_id: w.key_id, kek_version: w.key_version, kek_algorithm: w.algorithm, wrapped_key: wrappedBytes(w) });
      // What was just wrapped can be read back without an unwrap call (a copy: each cache destroys its own).
      this.cache.put(k.ids, k.clone());
      return k;
    } finally {
      r.plaintext.fill(0);
    }
  }

  // ---------------------------------------------------------------------------------------------- decryption

  #decrypt(envelope: unknown, b: FieldBinding, at: string, classification?: FieldClassification, dataType?: string): unknown {
    const v = this.#openCached(envelope, b, at, classification, dataType);
    if (v !== MISS) return v;
    const { field } = parseEnvelope(envelope, at);
    return this.#open(field, b, at, classification, dataType);
  }

  /**
   * The value of an envelope whose data key is in the cache, with no more checking than that implies: the key part
   * is the cached key's (the compact key part is the cache's id; the JSON members must equal the cached key's), so
   * only the field's own members are decoded here, strictly. MISS for anything else, or anything unusual.
   */
  #openCached(envelope: unknown, b: FieldBinding, at: string, classification?: FieldClassification, dataType?: string): unknown {
    let k: FieldKey | undefined;
    let ms: number;
    let iv: Buffer | undefined;
    let tag: Buffer | undefined;
    let ciphertext: Buffer | undefined;
    // Decoded into buffers reused from call to call: they are used before this returns (the cipher copies IV and tag).
    if (typeof envelope === 'string') {
      // pf2.<key>.<seal: 88 characters>.<ciphertext>: the key part is looked up by the cache's own string when it
      // equals the last one found (fields read together mostly share their DEK: no new 200-character string to hash;
      // a slice and === measured faster than startsWith at an offset), the seal decoded in place.
      const s = envelope;
      if (!s.startsWith(PREFIX_DOT)) return MISS;
      const keyEnd = s.indexOf('.', PREFIX_DOT.length);
      if (keyEnd < 0) return MISS;
      const keyPart = s.slice(PREFIX_DOT.length, keyEnd);
      const last = this.#lastKeyPart;
      const id = keyPart === last ? last : keyPart;
      const sealEnd = keyEnd + 1 + SEAL_CHARS;
      if (s.charCodeAt(sealEnd) !== 46 || !(k = this.cache.get(id, 0)) || !decodeBase64urlAt(s, keyEnd + 1, SEAL_IN)) return MISS;
      this.#lastKeyPart = k.id; // (the cache's own string, flat, rather than a slice of this envelope)
      if (!timingSafeEqual(SEAL_IN_COMMITMENT, k.part.commitment)) return MISS; // (the full path says why)
      iv = SEAL_IN_IV;
      tag = SEAL_IN_TAG;
      const t = SEAL_IN;
      ms = (t[SEAL_TIME]! * 256 + t[SEAL_TIME + 1]!) * 2 ** 32 + ((t[SEAL_TIME + 2]! << 24) >>> 0) + (t[SEAL_TIME + 3]! << 16) + (t[SEAL_TIME + 4]! << 8) + t[SEAL_TIME + 5]!;
      const ctText = s.slice(sealEnd + 1);
      ciphertext = strictDecode(ctText, true, scratchView);
    } else if (isJsonEnvelope(envelope)) {
      const e = envelope;
      const wrapped = e.wrapped_key;
      if (typeof wrapped !== 'string') return MISS;
      const last = this.#lastWrapped;
      if (!(k = this.cache.get(wrapped === last ? last : wrapped, 1))) return MISS;
      this.#lastWrapped = k.wrappedBase64;
      const p = k.part;
      if (e.v !== 2 || e.key_id !== p.dek || e.kek_id !== p.kek_id || e.kek_version !== p.kek_version || e.kek_algorithm !== p.kek_algorithm) return MISS;
      if (e.classification !== k.classification || e.data_type !== k.dataType || e.algorithm !== FIELD_ALGORITHM) return MISS;
      if (typeof e.commitment !== 'string' || typeof e.iv !== 'string' || typeof e.tag !== 'string' || typeof e.ciphertext !== 'string' || typeof e.encrypted_at !== 'string' || !hasJsonMemberCount(e)) return MISS;
      // The commitment is public (every envelope under the key carries it): its canonical text is compared.
      if (!sameText(e.commitment, k.commitmentBase64)) return MISS; // (the full path says why)
      iv = strictDecode(e.iv, false, IV_SCRATCH);
      tag = strictDecode(e.tag, false, TAG_SCRATCH);
      ms = this.#msOf(e.encrypted_at);
      if (!iv || iv.length !== IV_BYTES || Number.isNaN(ms)) return MISS;
      ciphertext = strictDecode(e.ciphertext, false, scratchView);
    } else {
      return MISS;
    }
    if (!ciphertext || !tag || tag.length !== TAG_BYTES) return MISS;
    if ((classification !== undefined && classification !== k.classification) || (dataType !== undefined && dataType !== k.dataType)) return MISS;
    return this.#openWith(k, ms, iv, ciphertext, tag, b, at);
  }

  /** The full path: the envelope is parsed and checked; its key from the cache, or unwrapped by the KMS. */
  #open(f: SealedField, b: FieldBinding, at: string, classification?: FieldClassification, dataType?: string): unknown {
    if (classification !== undefined && f.classification !== classification) {
      throw decryptFailed(b, at, `is classified ${f.classification}, the schema says ${classification} (moved from another field, or tampered)`);
    }
    if (dataType !== undefined && f.data_type !== dataType) {
      throw decryptFailed(b, at, `holds data type ${f.data_type}, the schema says ${dataType} (moved from another field, or tampered)`);
    }
    const ms = isoMs(f.encrypted_at);
    const use = (k: FieldKey) => {
      if (!timingSafeEqual(f.commitment, k.part.commitment)) throw decryptFailed(b, at, MOVED_OR_TAMPERED);
      return this.#openWith(k, ms, f.iv, f.ciphertext, f.tag, b, at);
    };
    const id = encodeKeyPart(f);
    const cached = this.cache.get(id, 0);
    if (cached) return use(cached);
    return this.cache.unwrap([id, f.wrapped_key.toString('base64')], () => this.#unwrapKey(f), use).catch((e: unknown) => {
      if (e instanceof UnwrapRefused) throw decryptFailed(b, at, e.message, e.cause);
      throw e;
    });
  }

  /** AES-256-GCM under the field key (its commitment already checked); the value. */
  #openWith(k: FieldKey, ms: number, iv: Buffer, ciphertext: Buffer, tag: Buffer, b: FieldBinding, at: string): unknown {
    const decipher = createDecipheriv(GCM, k.key, iv, DECIPHER_OPTIONS);
    decipher.setAAD(fieldAad(k.aadHead, ms, b.recordId, b.path));
    decipher.setAuthTag(tag);
    const pt = decipher.update(ciphertext);
    try {
      decipher.final(); // throws unless the tag verifies: nothing of pt is used before
    } catch (e) {
      pt.fill(0);
      throw decryptFailed(b, at, MOVED_OR_TAMPERED, e);
    }
    try {
      return decodeValue(pt, b, at);
    } finally {
      pt.fill(0);
    }
  }

  async #unwrapKey(f: SealedField): Promise<FieldKey> {
    let dek: Buffer;
    try {
      dek = await this.#kms.decrypt(f.kek_id, wrappedData(f), ctxFor(f.dek));
    } catch (e) {
      const code = (e as { code?: unknown }).code;
      if (typeof code === 'string' && UNWRAP_INTEGRITY.has(code)) {
        throw new UnwrapRefused(`does not decrypt: its data key does not unwrap under KMS key ${f.kek_id} v${f.kek_version} (${code}; tampered, or the key is gone)`, { cause: e });
      }
      throw e; // the KMS is unreachable, sealed, the key disabled or destroyed, or this principal may not decrypt: said as it is
    }
    keepWrapperPrototypesFast(); // (as in #fetchKey)
    try {
      if (dek.length !== 32) throw new UnwrapRefused(MOVED_OR_TAMPERED);
      return FieldKey.derive(dek, f);
    } finally {
      dek.fill(0);
    }
  }

  // ---------------------------------------------------------------------------------------------- small things

  /** The canonical form of a path as given (memoised: the same few paths come again and again). */
  #path(path: string): string {
    let p = this.#paths.get(path);
    if (p === undefined) {
      p = formatPath(parsePath(path));
      if (this.#paths.size >= MAX_PATHS) this.#paths.clear();
      this.#paths.set(path, p);
    }
    return p;
  }

  /** dekName(dataType, classification, new Date(ms)): the same string while `ms` is in the same month (a cheap map key). */
  #dekName(dataType: string, classification: EncryptedClassification, ms: number): string {
    let m = this.#month;
    if (ms < m.from || ms >= m.to) {
      const d = new Date(ms);
      const y = d.getUTCFullYear();
      const mo = d.getUTCMonth();
      const suffix = `${String(y).padStart(4, '0')}${String(mo + 1).padStart(2, '0')}`;
      m = this.#month = { from: Date.UTC(y, mo, 1), to: Date.UTC(y, mo + 1, 1), suffix, names: { internal: new Map(), confidential: new Map(), restricted: new Map() } };
    }
    const names = m.names[classification];
    let name = names.get(dataType);
    if (name === undefined) {
      name = `${dataType}_${classification}_${m.suffix}`;
      if (names.size < 1024) names.set(dataType, name);
    }
    return name;
  }

  /** new Date(ms).toISOString(), kept for the last ms (encryption and decryption share the pair). */
  #isoOf(ms: number): string {
    if (this.#isoMs !== ms) {
      this.#isoText = new Date(ms).toISOString();
      this.#isoMs = ms;
    }
    return this.#isoText;
  }

  /** isoMs(text), kept for the last text (the fields of a record, encrypted together, mostly share it); NaN if invalid. */
  #msOf(text: string): number {
    if (text === this.#isoText) return this.#isoMs;
    const ms = isoMs(text);
    if (!Number.isNaN(ms)) {
      this.#isoText = text;
      this.#isoMs = ms;
    }
    return ms;
  }
}

// Blind indexes (issue 5): equality search on encrypted fields. Next to an encrypted column, a row stores
// HMAC-SHA256(indexKey, normalise(value)) truncated to a few bits; a query computes the same for the value sought,
// selects the rows whose index matches, then decrypts them and compares (truncation makes false positives on purpose).
// What this leaks, and how many bits to keep: docs/blind-indexes.md.
//
// Keys. The index set's root key is a key of the hierarchy of its own: a 32-byte KMS data key, generated once under a
// KMS key (KEK) the caller names, with the encryption context { purpose: 'palisade-blind-index', index_set: <name> },
// its wrapped form kept by the caller (a settings row, a file) and unwrapped with kms.decrypt on every start.
// It is NOT one of the field DEKs: those are named per month (`{data_type}_{classification}_{YYYYMM}`) and change
// every month, and an index key must not change, or rows indexed before stop matching queries made after.
// Rotating the KEK that wraps the root key is harmless (kms.rewrap, or decrypt keeps working on the old version);
// rotating the root key itself means re-indexing: create a new index set, compute its columns for every row (decrypt
// each field, index it under the new set) into new columns, switch queries to them, then drop the old columns.
//
// Per index: indexKey = HKDF-SHA256(rootKey, salt = empty, info = 'palisade blind index v1' || 0x00 || index name, 32),
// so indexes of one set give unrelated values for the same input (equal emails and equal phone numbers cannot be
// linked across columns). Compound indexes HMAC the count of parts, then each normalised part prefixed with its
// 4-byte length, so ('ab', 'c') and ('a', 'bc') differ.
import { PalisadeError, canonicalBytes, hkdfSha256, hmacSha256, type EncryptedData } from '@palisade/core';

/** What the indexer needs of the KMS client (`client.kms` fits). */
export interface BlindIndexKms {
  dataKey(keyId: string, opts: { context?: Record<string, unknown> }): Promise<{ plaintext: Buffer; ciphertext: EncryptedData }>;
  decrypt(keyId: string, data: EncryptedData, context?: Record<string, unknown>): Promise<Buffer>;
}

/**
 * How a value is made canonical before the HMAC; equal after normalisation = same index.
 * - `exact`: canonical JSON of the value (any JSON value; `"1"` and `1` differ, case matters);
 * - `lowercase`: a string, Unicode NFC, then lower-cased (no trimming);
 * - `email`: a string, trimmed, NFC, lower-cased;
 * - `digits`: a string or number with everything but the ASCII digits 0-9 removed (phone numbers, SSNs);
 * - a function: its string or bytes (or null: no index for this value).
 */
export type BlindIndexNormaliser = 'exact' | 'lowercase' | 'email' | 'digits' | ((value: unknown) => string | Uint8Array | null);

export type BlindIndexEncoding = 'hex' | 'base64url';

export interface BlindIndexDefinition {
  /** The index's name: its key derives from it. `^[a-z][a-z0-9_]{0,62}$`. */
  name: string;
  /** The record's fields it indexes, in order (one for a plain index, several for a compound one). */
  fields: readonly string[];
  /** One normaliser for every field, or one per field. Default `exact`. */
  normalise?: BlindIndexNormaliser | readonly BlindIndexNormaliser[];
  /** Bits kept of the HMAC, 16..256 (default 32): fewer bits, more false positives, less to link rows with. */
  bits?: number;
  /** Default `hex`. */
  encoding?: BlindIndexEncoding;
  /** The column `columns()` writes; default `${name}_bidx`. */
  column?: string;
}

export const BLIND_INDEX_CONTEXT_PURPOSE = 'palisade-blind-index';
export const BLIND_INDEX_DEFAULT_BITS = 32;
export const BLIND_INDEX_MIN_BITS = 16;
export const BLIND_INDEX_MAX_BITS = 256;
const INFO = 'palisade blind index v1';
const WRAPPED_PREFIX = 'pbik1.';
const NAME = /^[a-z][a-z0-9_]{0,62}$/;
const NORMALISERS = new Set(['exact', 'lowercase', 'email', 'digits']);
/** KMS answers to an unwrap that mean "not this set's key" rather than "the KMS is unavailable". */
const UNWRAP_INTEGRITY = new Set(['PAL_KMS_DECRYPT_FAILED', 'PAL_KMS_KEY_NOT_FOUND', 'PAL_KMS_VERSION_NOT_FOUND', 'PAL_VALIDATION_FAILED']);

function invalid(message: string, index?: string): PalisadeError {
  return new PalisadeError('PAL_FIELD_INDEX_INVALID', message, { extensions: index === undefined ? {} : { index } });
}
function keyInvalid(message: string, cause?: unknown): PalisadeError {
  return new PalisadeError('PAL_FIELD_INDEX_KEY_INVALID', message, cause === undefined ? {} : { cause });
}
function checkName(what: string, name: unknown): string {
  if (typeof name !== 'string' || !NAME.test(name)) throw invalid(`${what} ${JSON.stringify(name)} must match ${NAME.source}`);
  return name;
}
const contextFor = (set: string) => ({ purpose: BLIND_INDEX_CONTEXT_PURPOSE, index_set: set });

/** The normalised bytes of one value, or null (no index) for null/undefined or a function's null. */
export function normaliseForIndex(normaliser: BlindIndexNormaliser, value: unknown, index = '?'): Buffer | null {
  if (value === null || value === undefined) return null;
  if (typeof normaliser === 'function') {
    const out = normaliser(value);
    if (out === null) return null;
    if (typeof out === 'string') return Buffer.from(out, 'utf8');
    if (out instanceof Uint8Array) return Buffer.from(out);
    throw invalid(`index ${index}: the normaliser returned neither a string, bytes nor null`, index);
  }
  switch (normaliser) {
    case 'exact':
      try {
        return canonicalBytes(value);
      } catch (e) {
        throw invalid(`index ${index}: the value is not JSON data (${(e as Error).message})`, index);
      }
    case 'lowercase':
    case 'email': {
      if (typeof value !== 'string') throw invalid(`index ${index}: normaliser ${normaliser} takes a string, not ${typeof value}`, index);
      const s = normaliser === 'email' ? value.trim() : value;
      return Buffer.from(s.normalize('NFC').toLowerCase(), 'utf8');
    }
    case 'digits': {
      if (typeof value !== 'string' && !(typeof value === 'number' && Number.isSafeInteger(value) && value >= 0)) {
        throw invalid(`index ${index}: normaliser digits takes a string or a non-negative integer`, index);
      }
      return Buffer.from(String(value).replace(/[^0-9]/g, ''), 'ascii');
    }
    default:
      throw invalid(`index ${index}: unknown normaliser ${JSON.stringify(normaliser)}`, index);
  }
}

interface CompiledIndex {
  name: string;
  fields: readonly string[];
  normalisers: BlindIndexNormaliser[];
  bits: number;
  encoding: BlindIndexEncoding;
  column: string;
}

function compile(def: BlindIndexDefinition): CompiledIndex {
  const name = checkName('index name', def?.name);
  if (!Array.isArray(def.fields) || def.fields.length === 0 || def.fields.some((f) => typeof f !== 'string' || f.length === 0)) {
    throw invalid(`index ${name}: fields must be a non-empty list of field names`, name);
  }
  const bits = def.bits ?? BLIND_INDEX_DEFAULT_BITS;
  if (!Number.isInteger(bits) || bits < BLIND_INDEX_MIN_BITS || bits > BLIND_INDEX_MAX_BITS) {
    throw invalid(`index ${name}: bits must be an integer from ${BLIND_INDEX_MIN_BITS} to ${BLIND_INDEX_MAX_BITS}`, name);
  }
  const encoding = def.encoding ?? 'hex';
  if (encoding !== 'hex' && encoding !== 'base64url') throw invalid(`index ${name}: encoding must be hex or base64url`, name);
  const n = def.normalise ?? 'exact';
  const normalisers = Array.isArray(n) ? [...(n as readonly BlindIndexNormaliser[])] : def.fields.map(() => n as BlindIndexNormaliser);
  if (normalisers.length !== def.fields.length) throw invalid(`index ${name}: ${normalisers.length} normalisers for ${def.fields.length} fields`, name);
  for (const x of normalisers) {
    if (typeof x !== 'function' && !NORMALISERS.has(x)) throw invalid(`index ${name}: unknown normaliser ${JSON.stringify(x)}`, name);
  }
  return { name, fields: [...def.fields], normalisers, bits, encoding, column: def.column ?? `${name}_bidx` };
}

function encodeWrapped(w: EncryptedData): string {
  return WRAPPED_PREFIX + Buffer.from(JSON.stringify({ key_id: w.key_id, key_version: w.key_version, algorithm: w.algorithm, iv: w.iv, ciphertext: w.ciphertext, tag: w.tag }), 'utf8').toString('base64url');
}

function decodeWrapped(s: unknown): EncryptedData {
  if (typeof s !== 'string' || !s.startsWith(WRAPPED_PREFIX)) throw keyInvalid(`the wrapped blind index key must be a string starting with ${WRAPPED_PREFIX}`);
  let w: Record<string, unknown>;
  try {
    w = JSON.parse(Buffer.from(s.slice(WRAPPED_PREFIX.length), 'base64url').toString('utf8')) as Record<string, unknown>;
  } catch (e) {
    throw keyInvalid('the wrapped blind index key does not parse', e);
  }
  const str = (k: string) => typeof w?.[k] === 'string' && (w[k] as string).length > 0;
  if (!w || typeof w !== 'object' || !str('key_id') || !str('algorithm') || !str('iv') || !str('ciphertext') || !str('tag') || !Number.isInteger(w.key_version)) {
    throw keyInvalid('the wrapped blind index key is missing key_id, key_version, algorithm, iv, ciphertext or tag');
  }
  return w as unknown as EncryptedData;
}

/**
 * Computes blind indexes for one index set. Obtain it once with `BlindIndexer.create` (store `wrappedKey`), then on
 * every start with `BlindIndexer.open` from the stored `wrappedKey`.
 */
export class BlindIndexer {
  readonly name: string;
  readonly #root: Buffer;
  readonly #keys = new Map<string, Buffer>();
  readonly #defs = new Map<string, CompiledIndex>();

  private constructor(name: string, root: Buffer, defs: readonly BlindIndexDefinition[]) {
    this.name = name;
    this.#root = root;
    for (const d of defs) this.define(d);
  }

  /** A new index set: a fresh root key from the KMS under `kekId`. Persist `wrappedKey`; losing it means re-indexing. */
  static async create(kms: BlindIndexKms, kekId: string, name: string, indexes: readonly BlindIndexDefinition[] = []): Promise<{ indexer: BlindIndexer; wrappedKey: string }> {
    checkName('index set name', name);
    const r = await kms.dataKey(kekId, { context: contextFor(name) });
    if (r.plaintext.length !== 32) throw new Error(`the KMS returned a ${r.plaintext.length}-byte data key; a blind index root key is 32 bytes`);
    return { indexer: new BlindIndexer(name, r.plaintext, indexes), wrappedKey: encodeWrapped(r.ciphertext) };
  }

  /** The index set whose root key `create` returned wrapped; PAL_FIELD_INDEX_KEY_INVALID when it is not this set's key under `kekId`. */
  static async open(kms: BlindIndexKms, kekId: string, name: string, wrappedKey: string, indexes: readonly BlindIndexDefinition[] = []): Promise<BlindIndexer> {
    checkName('index set name', name);
    const w = decodeWrapped(wrappedKey);
    if (w.key_id !== kekId) throw keyInvalid(`the wrapped blind index key is under KMS key ${w.key_id}, not ${kekId}`);
    let root: Buffer;
    try {
      root = await kms.decrypt(kekId, w, contextFor(name));
    } catch (e) {
      const code = (e as { code?: unknown }).code;
      if (typeof code === 'string' && UNWRAP_INTEGRITY.has(code)) {
        throw keyInvalid(`the wrapped blind index key does not unwrap under KMS key ${kekId} for index set ${name} (${code}; another set's key, or tampered)`, e);
      }
      throw e; // unreachable KMS, sealed, key disabled or destroyed, or not permitted: said as it is
    }
    if (root.length !== 32) throw keyInvalid(`the wrapped blind index key unwraps to ${root.length} bytes, not 32`);
    return new BlindIndexer(name, root, indexes);
  }

  /** Adds (or replaces) an index definition; throws PAL_FIELD_INDEX_INVALID. */
  define(def: BlindIndexDefinition): this {
    const c = compile(def);
    this.#defs.set(c.name, c);
    return this;
  }

  get definitions(): BlindIndexDefinition[] {
    return [...this.#defs.values()].map((d) => ({ name: d.name, fields: [...d.fields], normalise: [...d.normalisers], bits: d.bits, encoding: d.encoding, column: d.column }));
  }

  /** The blind index of one value under a one-field index (null for null/undefined). */
  index(name: string, value: unknown): string | null {
    const d = this.#def(name);
    if (d.fields.length !== 1) throw invalid(`index ${name} is compound (${d.fields.length} fields): use compound()`, name);
    return this.#compute(d, [value]);
  }

  /** The blind index of a compound index's values, in the order of its fields (null if any is null/undefined). */
  compound(name: string, values: readonly unknown[]): string | null {
    const d = this.#def(name);
    if (!Array.isArray(values) || values.length !== d.fields.length) throw invalid(`index ${name} takes ${d.fields.length} values, in the order ${d.fields.join(', ')}`, name);
    return this.#compute(d, values);
  }

  /** Every index column of a record (of the given definitions, default all defined): `{ email_bidx: '…', … }`. */
  columns(record: Record<string, unknown>, defs?: readonly BlindIndexDefinition[]): Record<string, string | null> {
    const list = defs ? defs.map((d) => compile(d)) : [...this.#defs.values()];
    const out: Record<string, string | null> = {};
    for (const d of list) out[d.column] = this.#compute(d, d.fields.map((f) => record[f]));
    return out;
  }

  /**
   * The confirming step of a query: true when the decrypted `stored` value(s) equal the `sought` value(s) under the
   * index's normalisers (what the index means by equal). Rows whose index matched but that fail this are false positives.
   */
  matches(name: string, stored: unknown, sought: unknown): boolean {
    const d = this.#def(name);
    const a = d.fields.length === 1 ? [stored] : (stored as unknown[]);
    const b = d.fields.length === 1 ? [sought] : (sought as unknown[]);
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== d.fields.length || b.length !== d.fields.length) throw invalid(`index ${name} takes ${d.fields.length} values`, name);
    return d.normalisers.every((n, i) => {
      const x = normaliseForIndex(n, a[i], name);
      const y = normaliseForIndex(n, b[i], name);
      return x !== null && y !== null && x.equals(y);
    });
  }

  /** Zeroes the keys held in memory; the indexer is unusable afterwards. */
  destroy(): void {
    this.#root.fill(0);
    for (const k of this.#keys.values()) k.fill(0);
    this.#keys.clear();
    this.#defs.clear();
  }

  #def(name: string): CompiledIndex {
    const d = this.#defs.get(name);
    if (!d) throw invalid(`index ${JSON.stringify(name)} is not defined in index set ${this.name}`, typeof name === 'string' ? name : undefined);
    return d;
  }

  #key(name: string): Buffer {
    let k = this.#keys.get(name);
    if (!k) this.#keys.set(name, (k = hkdfSha256(this.#root, Buffer.alloc(0), Buffer.concat([Buffer.from(INFO, 'utf8'), Buffer.of(0), Buffer.from(name, 'utf8')]), 32)));
    return k;
  }

  #compute(d: CompiledIndex, values: readonly unknown[]): string | null {
    const parts: Buffer[] = [];
    for (let i = 0; i < values.length; i++) {
      const p = normaliseForIndex(d.normalisers[i]!, values[i], d.name);
      if (p === null) return null;
      parts.push(p);
    }
    const head = Buffer.alloc(4);
    head.writeUInt32BE(parts.length);
    const framed: Buffer[] = [head];
    for (const p of parts) {
      const len = Buffer.alloc(4);
      len.writeUInt32BE(p.length);
      framed.push(len, p);
    }
    const mac = truncate(hmacSha256(this.#key(d.name), Buffer.concat(framed)), d.bits);
    return d.encoding === 'hex' ? mac.toString('hex') : mac.toString('base64url');
  }
}

/** The first `bits` bits of `mac` (bytes rounded up; the unused low bits of the last byte are zero). */
export function truncate(mac: Buffer, bits: number): Buffer {
  const out = Buffer.from(mac.subarray(0, Math.ceil(bits / 8)));
  const spare = out.length * 8 - bits;
  if (spare > 0) out[out.length - 1]! &= (0xff << spare) & 0xff;
  return out;
}

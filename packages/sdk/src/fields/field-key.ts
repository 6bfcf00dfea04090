// A data key as fields use it: derived once, when the DEK enters the cache, into the AES-256-GCM key of its fields
// and its key commitment; with everything an envelope says about the key already encoded. Plus the per-field pieces
// of format version 2: the AAD, the value encoding, and the random IVs.
//
//   field key  = HKDF-SHA512(IKM = DEK, salt = 'palisade field keys v2', info = 'palisade field key v2' ‖ 0 ‖ DEK name, 32)
//   commitment = HKDF-SHA512(IKM = DEK, salt = 'palisade field keys v2', info = 'palisade field key commitment v2' ‖ 0 ‖ DEK name, 32)
//
// (The AWS Encryption SDK's committing suites derive their data key and commitment the same way, with distinct
// labels; they do it per message because their messages carry no IV of their own. Here one DEK encrypts many fields
// with random 96-bit IVs, counted by the cache well under NIST SP 800-38D's 2^32: see ADR 0013.)
import { hkdfSync, randomFillSync } from 'node:crypto';
import { type EncryptedData } from '@palisade/core';
import { dekNameParts, encodeKeyPart, FORMAT_VERSION, keyPartProblem, TIME_BYTES, type SealedKeyPart } from './envelope.js';
import type { CachedKey } from './dek-cache.js';
import type { EncryptedClassification } from './schema.js';

const HKDF_SALT = Buffer.from('palisade field keys v2', 'utf8');
const KEY_LABEL = 'palisade field key v2';
const COMMITMENT_LABEL = 'palisade field key commitment v2';

function hkdf(dek: Buffer, label: string, name: string): Buffer {
  const info = Buffer.concat([Buffer.from(label, 'utf8'), Buffer.of(0), Buffer.from(name, 'latin1')]);
  return Buffer.from(hkdfSync('sha512', dek, HKDF_SALT, info, 32));
}

/** The field key and commitment of a DEK (32 bytes each). */
export function deriveFieldKey(dek: Buffer, name: string): { key: Buffer; commitment: Buffer } {
  return { key: hkdf(dek, KEY_LABEL, name), commitment: hkdf(dek, COMMITMENT_LABEL, name) };
}

/** A data key ready for fields. Its secret (the field key) is zeroed by destroy(); the rest is what envelopes show. */
export class FieldKey implements CachedKey {
  readonly part: SealedKeyPart;
  readonly classification: EncryptedClassification;
  readonly dataType: string;
  /** The compact form's key part: also the key's id in the decryption cache. */
  readonly id: string;
  /** The JSON form's wrapped_key and commitment (base64), and the compact form's commitment (base64url). */
  readonly wrappedBase64: string;
  readonly commitmentBase64: string;
  readonly commitmentBase64url: string;
  /** The AAD's first bytes: format version, u8 length + DEK name. */
  readonly aadHead: Buffer;
  /** The AES-256-GCM key of the fields. */
  readonly key: Buffer;
  #destroyed = false;

  private constructor(part: SealedKeyPart, key: Buffer, shared?: FieldKey) {
    this.part = part;
    this.key = key;
    if (shared) {
      this.classification = shared.classification;
      this.dataType = shared.dataType;
      this.id = shared.id;
      this.wrappedBase64 = shared.wrappedBase64;
      this.commitmentBase64 = shared.commitmentBase64;
      this.commitmentBase64url = shared.commitmentBase64url;
      this.aadHead = shared.aadHead;
      return;
    }
    const named = dekNameParts(part.dek)!;
    this.classification = named.classification;
    this.dataType = named.data_type;
    this.id = encodeKeyPart(part);
    this.wrappedBase64 = part.wrapped_key.toString('base64');
    this.commitmentBase64 = part.commitment.toString('base64');
    this.commitmentBase64url = part.commitment.toString('base64url');
    this.aadHead = Buffer.concat([Buffer.of(FORMAT_VERSION, part.dek.length), Buffer.from(part.dek, 'latin1')]);
  }

  /** The field key of a DEK wrapped as `wrapped` under the name `dek` (the DEK itself is not kept). Throws on a malformed key part. */
  static derive(dek: Buffer, k: Omit<SealedKeyPart, 'commitment'>): FieldKey {
    const { key, commitment } = deriveFieldKey(dek, k.dek);
    const part: SealedKeyPart = { dek: k.dek, kek_id: k.kek_id, kek_version: k.kek_version, kek_algorithm: k.kek_algorithm, wrapped_key: Buffer.from(k.wrapped_key), commitment };
    const problem = keyPartProblem(part);
    if (problem) {
      key.fill(0);
      throw new Error(`data key unusable for fields: ${problem}`);
    }
    return new FieldKey(part, key);
  }

  /** An independent copy (one per cache: each destroys its own). */
  clone(): FieldKey {
    return new FieldKey(this.part, Buffer.from(this.key), this);
  }

  /** The ids of the decryption cache: by the compact key part (index 0), by the JSON wrapped_key (index 1). */
  get ids(): [string, string] {
    return [this.id, this.wrappedBase64];
  }

  get destroyed(): boolean {
    return this.#destroyed;
  }

  destroy(): void {
    this.key.fill(0);
    this.#destroyed = true;
  }
}

/** The KMS's EncryptedData of a wrapped DEK (iv ‖ ciphertext ‖ tag) for an unwrap call. */
export function wrappedData(k: SealedKeyPart): EncryptedData {
  const w = k.wrapped_key;
  return {
    key_id: k.kek_id,
    key_version: k.kek_version,
    algorithm: k.kek_algorithm,
    iv: w.subarray(0, 12).toString('base64'),
    ciphertext: w.subarray(12, w.length - 16).toString('base64'),
    tag: w.subarray(w.length - 16).toString('base64'),
  };
}

/** iv ‖ ciphertext ‖ tag of the KMS's EncryptedData. */
export function wrappedBytes(w: EncryptedData): Buffer {
  const iv = Buffer.from(w.iv, 'base64');
  const tag = Buffer.from(w.tag, 'base64');
  if (iv.length !== 12 || tag.length !== 16) throw new Error('the KMS returned a wrapped key of an unexpected shape');
  return Buffer.concat([iv, Buffer.from(w.ciphertext, 'base64'), tag]);
}

// ------------------------------------------------------------------------------------------------ AAD

/**
 * The AAD of a field: aadHead (format version, u8 length + DEK name — which spells data type and classification),
 * 6-byte encrypted_at (ms), u32 length + record id (UTF-8), u32 length + schema path (UTF-8); big-endian lengths.
 * Written into one scratch buffer (setAAD copies it at once): no allocation but the view. Record ids and paths must
 * be well-formed UTF-16 (the encryptor checks): a lone surrogate would be written as U+FFFD, two ids as one.
 */
let aadScratch = Buffer.allocUnsafeSlow(1024);
/** The head at the start of aadScratch (fields in a row mostly share their DEK: it is not copied again). */
let aadScratchHead: Buffer | undefined;
/** Views of aadScratch from its start, one per length, made once (a view costs more than writing the AAD). */
let aadViews: Buffer[] = [];
export function fieldAad(head: Buffer, ms: number, recordId: string, path: string): Buffer {
  const need = head.length + TIME_BYTES + 8 + 3 * (recordId.length + path.length);
  if (need > aadScratch.length) {
    aadScratch = Buffer.allocUnsafeSlow(Math.max(need, 2 * aadScratch.length));
    aadScratchHead = undefined;
    aadViews = [];
  }
  const b = aadScratch;
  if (aadScratchHead !== head) {
    head.copy(b, 0);
    aadScratchHead = head;
  }
  let o = head.length;
  // 48-bit time, big-endian, by hand (below 2^48: the high part is at most 16 bits)
  const high = Math.floor(ms / 2 ** 32);
  const low = ms - high * 2 ** 32;
  b[o] = high >>> 8;
  b[o + 1] = high & 0xff;
  b[o + 2] = low >>> 24;
  b[o + 3] = (low >>> 16) & 0xff;
  b[o + 4] = (low >>> 8) & 0xff;
  b[o + 5] = low & 0xff;
  o = writeLengthPrefixed(b, o + TIME_BYTES, recordId);
  o = writeLengthPrefixed(b, o, path);
  return o <= 4096 ? (aadViews[o] ?? (aadViews[o] = b.subarray(0, o))) : b.subarray(0, o);
}

/** u32 byte length ‖ UTF-8 of `s` at `o`; the offset after. Short ASCII strings (ids, paths) are copied here, others by Buffer. */
function writeLengthPrefixed(b: Buffer, o: number, s: string): number {
  let n = s.length;
  if (n <= 64) {
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) {
        n = -1;
        break;
      }
      b[o + 4 + i] = c;
    }
  } else {
    n = -1;
  }
  if (n < 0) n = b.write(s, o + 4, 'utf8');
  b[o] = n >>> 24;
  b[o + 1] = (n >>> 16) & 0xff;
  b[o + 2] = (n >>> 8) & 0xff;
  b[o + 3] = n & 0xff;
  return o + 4 + n;
}

// ------------------------------------------------------------------------------------------------ values

/** The plaintext's first byte: how the value is encoded. */
export const VALUE_STRING = 0x01; // a string, as UTF-8
export const VALUE_JSON = 0x02; // any other JSON value, as canonical JSON (RFC 8785)

/** No lone surrogate (String.prototype.isWellFormed, ES2024: in Node 20, not yet in the ES2023 lib types). */
export const isWellFormed = (s: string): boolean => (s as unknown as { isWellFormed(): boolean }).isWellFormed();

/** A string's plaintext (kind byte ‖ UTF-8) in a buffer of its own, which the caller zeroes; undefined if it has a lone surrogate. */
export function stringPlaintext(s: string): Buffer | undefined {
  if (!isWellFormed(s)) return undefined;
  const b = Buffer.allocUnsafe(1 + Buffer.byteLength(s, 'utf8'));
  b[0] = VALUE_STRING;
  b.write(s, 1, 'utf8');
  return b;
}

/**
 * The same in a buffer reused from call to call (for a value encrypted at once, before any await; up to 64 KiB):
 * a view the caller zeroes (`.fill(0)`) after use. `s` must be well-formed (isWellFormed) and `utf8Bytes` its
 * Buffer.byteLength. Undefined when the string is longer.
 */
let plaintextScratch = Buffer.allocUnsafeSlow(4096);
export function stringPlaintextScratch(s: string, utf8Bytes: number): Buffer | undefined {
  if (utf8Bytes >= 64 * 1024) return undefined;
  if (utf8Bytes + 1 > plaintextScratch.length) {
    plaintextScratch.fill(0);
    plaintextScratch = Buffer.allocUnsafeSlow(Math.max(utf8Bytes + 1, 2 * plaintextScratch.length));
  }
  const b = plaintextScratch;
  b[0] = VALUE_STRING;
  b.write(s, 1, 'utf8');
  return b.subarray(0, 1 + utf8Bytes);
}

export function jsonPlaintext(json: Buffer): Buffer {
  const b = Buffer.allocUnsafe(1 + json.length);
  b[0] = VALUE_JSON;
  json.copy(b, 1);
  return b;
}

// ------------------------------------------------------------------------------------------------ random

/**
 * Random bytes (IVs) taken front to back from 4 KiB drawn from the CSPRNG at a time: one randomFillSync per field
 * cost more than its AES-GCM. A pool is never refilled in place (a new one is drawn), so bytes are used once and the
 * views handed out stay valid.
 */
let pool: Buffer = Buffer.alloc(0);
let offset = 0;
export function poolRandom(n: number): Buffer {
  if (offset + n > pool.length) {
    pool = randomFillSync(Buffer.allocUnsafeSlow(4096));
    offset = 0;
  }
  const out = pool.subarray(offset, offset + n);
  offset += n;
  return out;
}

// The encrypted field: one value (`SealedField`) with two lossless encodings, the seed's JSON shape and a compact
// string for columns. Both carry exactly the same data; converting one into the other and back gives the same bytes.
import { PalisadeError } from '@palisade/core';
import { DATA_TYPE, FIELD_CLASSIFICATIONS, type EncryptedClassification } from './schema.js';

export const FIELD_ALGORITHM = 'AES-256-GCM';
export const COMPACT_PREFIX = 'pf1';
export const IV_BYTES = 12;
export const TAG_BYTES = 16;
export const SALT_BYTES = 16;
export const COMMITMENT_BYTES = 32;
/** The KMS's EncryptedData of the DEK, its byte fields concatenated: iv (12) ‖ ciphertext ‖ tag (16). */
const WRAP_OVERHEAD = 12 + 16;

/** Everything an encrypted field carries, decoded. */
export interface SealedField {
  /** The DEK's name, `{data_type}_{classification}_{YYYYMM}` (the seed's `key_id`): a label, several DEKs share it. */
  dek: string;
  classification: EncryptedClassification;
  data_type: string;
  /** ISO 8601 with milliseconds, UTC (`Date.prototype.toISOString`). */
  encrypted_at: string;
  /** The KMS key (KEK) the DEK is wrapped under, its version and algorithm (as the KMS's EncryptedData has them). */
  kek_id: string;
  kek_version: number;
  kek_algorithm: string;
  /** The wrapped DEK: the KMS's EncryptedData iv ‖ ciphertext ‖ tag. */
  wrapped_key: Buffer;
  /** HKDF salt of this field's message key. */
  salt: Buffer;
  /** Key commitment: HKDF(DEK, salt, 'palisade field commitment v1'), checked before decrypting. */
  commitment: Buffer;
  iv: Buffer;
  ciphertext: Buffer;
  tag: Buffer;
}

/** The JSON form: the seed's `{ciphertext, iv, tag, key_id, algorithm, classification, encrypted_at}` and what decrypting needs besides. */
export interface FieldEnvelope {
  v: 1;
  ciphertext: string;
  iv: string;
  tag: string;
  key_id: string;
  algorithm: typeof FIELD_ALGORITHM;
  classification: EncryptedClassification;
  data_type: string;
  encrypted_at: string;
  kek_id: string;
  kek_version: number;
  kek_algorithm: string;
  wrapped_key: string;
  salt: string;
  commitment: string;
}

export type EnvelopeForm = 'json' | 'compact';

export function envelopeError(message: string, path?: string): PalisadeError {
  return new PalisadeError('PAL_FIELD_ENVELOPE_INVALID', path ? `field ${path}: ${message}` : message, { extensions: path ? { path } : {} });
}

const ENCRYPTED: readonly string[] = FIELD_CLASSIFICATIONS.filter((c) => c !== 'public');
const DEK_NAME = /^([a-z][a-z0-9_-]{0,62})_(internal|confidential|restricted)_(\d{4})(0[1-9]|1[0-2])$/;
const KEK_ID = /^[A-Za-z0-9_-]{1,128}$/;
const KEK_ALG = /^[A-Z0-9-]{1,32}$/;
const B64URL = /^[A-Za-z0-9_-]*$/;

/** The DEK name of a data type and classification in the month of `at` (UTC). */
export function dekName(dataType: string, classification: EncryptedClassification, at: Date): string {
  return `${dataType}_${classification}_${at.getUTCFullYear().toString().padStart(4, '0')}${String(at.getUTCMonth() + 1).padStart(2, '0')}`;
}

// Strict decoders: a string decodes only if encoding the bytes gives it back, so each value has one spelling (a
// character outside the alphabet, which Buffer.from skips, or missing padding never round-trips).
function fromB64(s: unknown, what: string, path?: string): Buffer {
  if (typeof s !== 'string') throw envelopeError(`${what} is not base64`, path);
  const b = Buffer.from(s, 'base64');
  if (b.toString('base64') !== s) throw envelopeError(`${what} is not canonical base64`, path);
  return b;
}
function fromB64url(s: string, what: string, path?: string): Buffer {
  if (!B64URL.test(s)) throw envelopeError(`${what} is not base64url`, path);
  const b = Buffer.from(s, 'base64url');
  if (b.toString('base64url') !== s) throw envelopeError(`${what} is not canonical base64url`, path);
  return b;
}

/** Checks what both forms must agree on; returns the field. */
function check(f: SealedField, path?: string): SealedField {
  const m = DEK_NAME.exec(f.dek);
  if (!m) throw envelopeError('key_id is not a DEK name {data_type}_{classification}_{YYYYMM}', path);
  if (!ENCRYPTED.includes(f.classification) || m[2] !== f.classification) throw envelopeError('classification does not match key_id', path);
  if (!DATA_TYPE.test(f.data_type) || m[1] !== f.data_type) throw envelopeError('data_type does not match key_id', path);
  const t = Date.parse(f.encrypted_at);
  if (!Number.isFinite(t) || t < 0 || t >= 2 ** 48 || new Date(t).toISOString() !== f.encrypted_at) throw envelopeError('encrypted_at is not an ISO 8601 UTC time with milliseconds', path);
  if (!KEK_ID.test(f.kek_id)) throw envelopeError('kek_id is malformed', path);
  if (!Number.isInteger(f.kek_version) || f.kek_version < 1 || f.kek_version > 0xffffffff) throw envelopeError('kek_version is not a positive integer', path);
  if (!KEK_ALG.test(f.kek_algorithm)) throw envelopeError('kek_algorithm is malformed', path);
  if (f.wrapped_key.length <= WRAP_OVERHEAD || f.wrapped_key.length > 255) throw envelopeError('wrapped_key has the wrong length', path);
  if (f.salt.length !== SALT_BYTES) throw envelopeError('salt has the wrong length', path);
  if (f.commitment.length !== COMMITMENT_BYTES) throw envelopeError('commitment has the wrong length', path);
  if (f.iv.length !== IV_BYTES) throw envelopeError('iv has the wrong length', path);
  if (f.tag.length !== TAG_BYTES) throw envelopeError('tag has the wrong length (truncated?)', path);
  return f;
}

export function toJsonEnvelope(f: SealedField): FieldEnvelope {
  return {
    v: 1,
    ciphertext: f.ciphertext.toString('base64'),
    iv: f.iv.toString('base64'),
    tag: f.tag.toString('base64'),
    key_id: f.dek,
    algorithm: FIELD_ALGORITHM,
    classification: f.classification,
    data_type: f.data_type,
    encrypted_at: f.encrypted_at,
    kek_id: f.kek_id,
    kek_version: f.kek_version,
    kek_algorithm: f.kek_algorithm,
    wrapped_key: f.wrapped_key.toString('base64'),
    salt: f.salt.toString('base64'),
    commitment: f.commitment.toString('base64'),
  };
}

const JSON_KEYS = Object.keys(toJsonEnvelope({ dek: '', classification: 'internal', data_type: '', encrypted_at: '', kek_id: '', kek_version: 1, kek_algorithm: '', wrapped_key: Buffer.alloc(0), salt: Buffer.alloc(0), commitment: Buffer.alloc(0), iv: Buffer.alloc(0), ciphertext: Buffer.alloc(0), tag: Buffer.alloc(0) })).sort();

/** Does this value look like a JSON envelope (an object with `v` and `key_id`)? Decoding still checks everything. */
export function isJsonEnvelope(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && 'key_id' in v && 'v' in v;
}

export function fromJsonEnvelope(e: unknown, path?: string): SealedField {
  if (!isJsonEnvelope(e)) throw envelopeError('is not an encrypted field envelope', path);
  if (e.v !== 1) throw envelopeError(`envelope version ${JSON.stringify(e.v)} is not supported`, path);
  const keys = Object.keys(e).sort();
  if (keys.join() !== JSON_KEYS.join()) throw envelopeError(`envelope members must be exactly ${JSON_KEYS.join(', ')}`, path);
  if (e.algorithm !== FIELD_ALGORITHM) throw envelopeError(`algorithm must be ${FIELD_ALGORITHM}`, path);
  for (const k of ['key_id', 'classification', 'data_type', 'encrypted_at', 'kek_id', 'kek_algorithm'] as const) {
    if (typeof e[k] !== 'string') throw envelopeError(`${k} is not a string`, path);
  }
  return check(
    {
      dek: e.key_id as string,
      classification: e.classification as EncryptedClassification,
      data_type: e.data_type as string,
      encrypted_at: e.encrypted_at as string,
      kek_id: e.kek_id as string,
      kek_version: e.kek_version as number,
      kek_algorithm: e.kek_algorithm as string,
      wrapped_key: fromB64(e.wrapped_key, 'wrapped_key', path),
      salt: fromB64(e.salt, 'salt', path),
      commitment: fromB64(e.commitment, 'commitment', path),
      iv: fromB64(e.iv, 'iv', path),
      ciphertext: fromB64(e.ciphertext, 'ciphertext', path),
      tag: fromB64(e.tag, 'tag', path),
    },
    path,
  );
}

/*
 * Compact form: `pf1.<header>.<iv>.<ciphertext>.<tag>`, each part unpadded base64url. The header is binary, fields in
 * this order: u8 length + DEK name (ASCII; it names data_type and classification), 6-byte big-endian encrypted_at in
 * milliseconds since the epoch, u8 length + KEK id, u32 KEK version, u8 length + KEK algorithm, u8 length + wrapped
 * key, 16-byte salt, 32-byte commitment. The JSON form's data_type and classification are the ones the DEK name
 * spells (both decoders insist on that), and its encrypted_at is the toISOString() of the milliseconds, so the two
 * forms hold the same information.
 */
export function toCompact(f: SealedField): string {
  const str = (s: string) => {
    const b = Buffer.from(s, 'ascii');
    return Buffer.concat([Buffer.of(b.length), b]);
  };
  const time = Buffer.alloc(6);
  time.writeUIntBE(Date.parse(f.encrypted_at), 0, 6);
  const version = Buffer.alloc(4);
  version.writeUInt32BE(f.kek_version);
  const header = Buffer.concat([str(f.dek), time, str(f.kek_id), version, str(f.kek_algorithm), Buffer.of(f.wrapped_key.length), f.wrapped_key, f.salt, f.commitment]);
  return [COMPACT_PREFIX, header, f.iv, f.ciphertext, f.tag].map((p) => (typeof p === 'string' ? p : p.toString('base64url'))).join('.');
}

export function isCompactEnvelope(v: unknown): v is string {
  return typeof v === 'string' && v.startsWith(`${COMPACT_PREFIX}.`);
}

export function fromCompact(s: unknown, path?: string): SealedField {
  if (!isCompactEnvelope(s)) throw envelopeError(`is not a compact encrypted field (${COMPACT_PREFIX}.…)`, path);
  const parts = s.split('.');
  if (parts.length !== 5) throw envelopeError(`compact form has ${parts.length} parts, not 5 (truncated?)`, path);
  const h = fromB64url(parts[1]!, 'header', path);
  let o = 0;
  const take = (n: number, what: string): Buffer => {
    if (o + n > h.length) throw envelopeError(`header ends inside ${what} (truncated?)`, path);
    const out = h.subarray(o, o + n);
    o += n;
    return Buffer.from(out);
  };
  const str = (what: string): string => {
    const b = take(take(1, what)[0]!, what);
    const text = b.toString('latin1');
    if (!/^[\x20-\x7e]*$/.test(text)) throw envelopeError(`${what} is not ASCII`, path);
    return text;
  };
  const dek = str('key_id');
  const ms = take(6, 'encrypted_at').readUIntBE(0, 6);
  const kek_id = str('kek_id');
  const kek_version = take(4, 'kek_version').readUInt32BE(0);
  const kek_algorithm = str('kek_algorithm');
  const wrapped_key = take(take(1, 'wrapped_key')[0]!, 'wrapped_key');
  const salt = take(SALT_BYTES, 'salt');
  const commitment = take(COMMITMENT_BYTES, 'commitment');
  if (o !== h.length) throw envelopeError('header has trailing bytes', path);
  const m = DEK_NAME.exec(dek);
  if (!m) throw envelopeError('key_id is not a DEK name {data_type}_{classification}_{YYYYMM}', path);
  return check(
    {
      dek,
      classification: m[2] as EncryptedClassification,
      data_type: m[1]!,
      encrypted_at: new Date(ms).toISOString(),
      kek_id,
      kek_version,
      kek_algorithm,
      wrapped_key,
      salt,
      commitment,
      iv: fromB64url(parts[2]!, 'iv', path),
      ciphertext: fromB64url(parts[3]!, 'ciphertext', path),
      tag: fromB64url(parts[4]!, 'tag', path),
    },
    path,
  );
}

/** Either form → the field; PAL_FIELD_ENVELOPE_INVALID when it is neither (a value in clear included). */
export function parseEnvelope(v: unknown, path?: string): { field: SealedField; form: EnvelopeForm } {
  if (isCompactEnvelope(v)) return { field: fromCompact(v, path), form: 'compact' };
  if (isJsonEnvelope(v)) return { field: fromJsonEnvelope(v, path), form: 'json' };
  throw envelopeError('does not hold an encrypted field (neither the JSON envelope nor the pf1. compact form)', path);
}

export function encodeEnvelope(f: SealedField, form: EnvelopeForm): FieldEnvelope | string {
  return form === 'compact' ? toCompact(f) : toJsonEnvelope(f);
}

/** JSON ⇄ compact, losslessly (validating on the way). */
export function envelopeToCompact(e: FieldEnvelope | string): string {
  return toCompact(parseEnvelope(e).field);
}
export function envelopeToJson(e: FieldEnvelope | string): FieldEnvelope {
  return toJsonEnvelope(parseEnvelope(e).field);
}

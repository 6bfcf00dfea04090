// The encrypted field: one value (`SealedField`) with two lossless encodings, the seed's JSON shape and a compact
// string for columns. Both carry exactly the same data; converting one into the other and back gives the same bytes.
//
// Format version 2 (this file). Version 1 (a key and commitment derived per field from an HKDF salt carried in each
// envelope, `pf1.` / `"v": 1`) was never released: it is refused as an unknown version, not decrypted.
import { PalisadeError } from '@palisade/core';
import { DATA_TYPE, FIELD_CLASSIFICATIONS, type EncryptedClassification } from './schema.js';

export const FORMAT_VERSION = 2;
export const FIELD_ALGORITHM = 'AES-256-GCM';
export const COMPACT_PREFIX = 'pf2';
export const IV_BYTES = 12;
export const TAG_BYTES = 16;
export const COMMITMENT_BYTES = 32;
/** encrypted_at in the compact form and in the AAD: milliseconds since the epoch, 48 bits big-endian. */
export const TIME_BYTES = 6;
/** The compact form's seal part: commitment ‖ encrypted_at ‖ iv ‖ tag, at these offsets (66 bytes, 88 characters). */
export const SEAL_COMMITMENT = 0;
export const SEAL_TIME = SEAL_COMMITMENT + 32;
export const SEAL_IV = SEAL_TIME + 6;
export const SEAL_TAG = SEAL_IV + 12;
export const SEAL_BYTES = SEAL_TAG + 16;
/** The KMS's EncryptedData of the DEK, its byte fields concatenated: iv (12) ‖ ciphertext ‖ tag (16). */
const WRAP_OVERHEAD = 12 + 16;

/** What identifies a data key and commits to it: the same for every field encrypted under it. */
export interface SealedKeyPart {
  /** The DEK's name, `{data_type}_{classification}_{YYYYMM}` (the seed's `key_id`): a label, several DEKs share it. */
  dek: string;
  /** The KMS key (KEK) the DEK is wrapped under, its version and algorithm (as the KMS's EncryptedData has them). */
  kek_id: string;
  kek_version: number;
  kek_algorithm: string;
  /** The wrapped DEK: the KMS's EncryptedData iv ‖ ciphertext ‖ tag. */
  wrapped_key: Buffer;
  /** Key commitment: HKDF-SHA512(DEK, 'palisade field key commitment v2' ‖ 0 ‖ dek), checked before decrypting. */
  commitment: Buffer;
}

/** Everything an encrypted field carries, decoded. */
export interface SealedField extends SealedKeyPart {
  classification: EncryptedClassification;
  data_type: string;
  /** ISO 8601 with milliseconds, UTC (`Date.prototype.toISOString`). */
  encrypted_at: string;
  iv: Buffer;
  ciphertext: Buffer;
  tag: Buffer;
}

/** The JSON form: the seed's `{ciphertext, iv, tag, key_id, algorithm, classification, encrypted_at}` and what decrypting needs besides. */
export interface FieldEnvelope {
  v: 2;
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

/** The DEK name of a data type and classification in the month of `at` (UTC). */
export function dekName(dataType: string, classification: EncryptedClassification, at: Date): string {
  return `${dataType}_${classification}_${at.getUTCFullYear().toString().padStart(4, '0')}${String(at.getUTCMonth() + 1).padStart(2, '0')}`;
}

/** The data type and classification a DEK name spells, or undefined when it is not a DEK name. */
export function dekNameParts(name: string): { data_type: string; classification: EncryptedClassification } | undefined {
  const m = DEK_NAME.exec(name);
  return m ? { data_type: m[1]!, classification: m[2] as EncryptedClassification } : undefined;
}

// ------------------------------------------------------------------------------------------------ strict decoders

// Strict decoders: a string decodes only if encoding the bytes gives it back, so each value has one spelling. Without
// a regex or a re-encoding. Short strings are decoded here, character by character (an invalid one fails). Longer ones
// by Buffer's decoder, which skips characters outside the alphabet and stops at '=': the number of bytes it writes
// tells whether every character was used, and the other alphabet's characters (which it also accepts) are looked for.
// Either way the unused low bits of the last character must be zero. A test checks this against the round trip on
// a million strings.
const STD = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
/** Character code (below 256) → its 6-bit value, or -1; one table per alphabet. */
const STD_VALUE = new Int8Array(256).fill(-1);
const URL_VALUE = new Int8Array(256).fill(-1);
for (let i = 0; i < 64; i++) {
  STD_VALUE[STD.charCodeAt(i)] = i;
  URL_VALUE[URL.charCodeAt(i)] = i;
}
const SHORT = 64;
/** Reused ciphertexts are at most this long: a longer one gets a buffer of its own. */
const MAX_SCRATCH = 64 * 1024;
const MAX_VIEWS = 8 * 1024;

/**
 * Canonical padded base64 (`url` false) or unpadded base64url (`url` true) → bytes, or undefined. With `into`, the
 * bytes are written there when they fit (the result is then `into` or a view of it: use it before `into` is reused);
 * `into` may also be a function that gives a buffer of exactly n bytes, or undefined (scratchView).
 */
export function strictDecode(s: string, url: boolean, into?: Buffer | ((n: number) => Buffer | undefined)): Buffer | undefined {
  const len = s.length;
  let n: number;
  let pad = 0;
  if (url) {
    const rest = len & 3;
    if (rest === 1) return undefined;
    n = (len >> 2) * 3 + (rest === 0 ? 0 : rest - 1);
  } else {
    if ((len & 3) !== 0) return undefined;
    if (len > 0 && s.charCodeAt(len - 1) === 61) pad = s.charCodeAt(len - 2) === 61 ? 2 : 1;
    n = (len >> 2) * 3 - pad;
  }
  const table = url ? URL_VALUE : STD_VALUE;
  const chars = len - pad;
  const partial = n % 3; // bytes of the last, partial group: 1 leaves 4 bits of its last character unused, 2 leaves 2
  if (partial !== 0) {
    const c = s.charCodeAt(chars - 1);
    if (c > 255 || (table[c]! & (partial === 1 ? 15 : 3)) !== 0) return undefined; // an invalid character's -1 fails too
  }
  const out = typeof into === 'function' ? into(n) : into !== undefined && n <= into.length ? into : undefined;
  if (len <= SHORT) {
    const b = out ?? Buffer.allocUnsafe(n);
    if (!decodeRun(s, 0, chars, table, b, 0)) return undefined;
    return b.length === n ? b : b.subarray(0, n);
  }
  const enc = url ? 'base64url' : 'base64';
  let b: Buffer;
  if (out) {
    if (out.write(s, 0, n, enc) !== n) return undefined;
    b = out.length === n ? out : out.subarray(0, n);
  } else {
    b = Buffer.from(s, enc);
    if (b.length !== n) return undefined;
  }
  if (url ? s.indexOf('+') !== -1 || s.indexOf('/') !== -1 || s.indexOf('=') !== -1 : s.indexOf('-') !== -1 || s.indexOf('_') !== -1) return undefined;
  return b;
}

/**
 * Decodes the unpadded base64url of exactly `out.length` bytes found in `s` at `start` (⌈4·n/3⌉ characters) into
 * `out`; false unless those characters are its canonical encoding. For the fixed-size members of compact envelopes
 * (the 88-character seal goes through Buffer's decoder, 3× faster there than decodeRun).
 */
export function decodeBase64urlAt(s: string, start: number, out: Buffer): boolean {
  const end = start + Math.ceil((out.length * 4) / 3);
  return end <= s.length && strictDecode(s.slice(start, end), true, out) !== undefined;
}

/**
 * Decodes the characters `s[from, end)` (whole groups of 4, then 0, 2 or 3 more) into `out` from `at`, with one
 * alphabet's `table`: false on a character outside the alphabet, a lone last character, or unused low bits of the last
 * character that are not zero (so only the canonical encoding decodes).
 */
function decodeRun(s: string, from: number, end: number, table: Int8Array, out: Buffer, at: number): boolean {
  let i = from;
  let o = at;
  for (; i + 4 <= end; i += 4) {
    const c0 = s.charCodeAt(i);
    const c1 = s.charCodeAt(i + 1);
    const c2 = s.charCodeAt(i + 2);
    const c3 = s.charCodeAt(i + 3);
    const v0 = table[c0 & 255]!;
    const v1 = table[c1 & 255]!;
    const v2 = table[c2 & 255]!;
    const v3 = table[c3 & 255]!;
    if ((c0 | c1 | c2 | c3) > 255 || (v0 | v1 | v2 | v3) < 0) return false;
    const v = (v0 << 18) | (v1 << 12) | (v2 << 6) | v3;
    out[o] = v >>> 16;
    out[o + 1] = (v >>> 8) & 255;
    out[o + 2] = v & 255;
    o += 3;
  }
  const left = end - i; // 0, 2 (one byte; 4 unused bits) or 3 (two bytes; 2 unused bits)
  if (left === 0) return true;
  if (left === 1) return false;
  const c0 = s.charCodeAt(i);
  const c1 = s.charCodeAt(i + 1);
  const c2 = left === 3 ? s.charCodeAt(i + 2) : 65; // 'A' (0) when absent
  const v0 = table[c0 & 255]!;
  const v1 = table[c1 & 255]!;
  const v2 = table[c2 & 255]!;
  if ((c0 | c1 | c2) > 255 || (v0 | v1 | v2) < 0) return false;
  if (left === 2 ? (v1 & 15) !== 0 : (v2 & 3) !== 0) return false;
  const v = (v0 << 18) | (v1 << 12) | (v2 << 6);
  out[o] = v >>> 16;
  if (left === 3) out[o + 1] = (v >>> 8) & 255;
  return true;
}

/** Canonical padded base64 → bytes (a buffer of their own), or undefined. */
export function strictBase64(s: string): Buffer | undefined {
  return strictDecode(s, false);
}

/** Canonical unpadded base64url → bytes (a buffer of their own), or undefined. */
export function strictBase64url(s: string): Buffer | undefined {
  return strictDecode(s, true);
}

/**
 * A buffer of exactly `n` bytes to decode a ciphertext into, reused from call to call: a view of one scratch buffer,
 * made once per length up to 8 KiB (making a view costs about as much as decoding a short string); up to 64 KiB. Undefined
 * beyond: the ciphertext then gets a buffer of its own.
 */
let scratch = Buffer.allocUnsafeSlow(4096);
let scratchViews: Buffer[] = [];
export function scratchView(n: number): Buffer | undefined {
  if (n > MAX_SCRATCH) return undefined;
  if (n > scratch.length) {
    scratch = Buffer.allocUnsafeSlow(Math.min(MAX_SCRATCH, Math.max(n, 2 * scratch.length)));
    scratchViews = [];
  }
  if (n > MAX_VIEWS) return scratch.subarray(0, n);
  return scratchViews[n] ?? (scratchViews[n] = scratch.subarray(0, n));
}

function fromB64(s: unknown, what: string, path?: string): Buffer {
  if (typeof s !== 'string') throw envelopeError(`${what} is not base64`, path);
  const b = strictBase64(s);
  if (!b) throw envelopeError(`${what} is not canonical base64`, path);
  return b;
}
function fromB64url(s: string, what: string, path?: string): Buffer {
  const b = strictBase64url(s);
  if (!b) throw envelopeError(`${what} is not canonical base64url`, path);
  return b;
}

const MAX_MS = 2 ** 48;
const DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
function digits(s: string, at: number, n: number): number {
  let v = 0;
  for (let i = at; i < at + n; i++) {
    const d = s.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return NaN;
    v = v * 10 + d;
  }
  return v;
}

/**
 * The milliseconds of an `encrypted_at`, NaN unless it is exactly `new Date(ms).toISOString()` for 0 ≤ ms < 2^48.
 * `YYYY-MM-DDTHH:mm:ss.sssZ` is parsed by hand (Date.parse also takes 24:00, other spellings of one time); the
 * rare other shapes (years past 9999) by the round trip.
 */
export function isoMs(s: string): number {
  if (s.length === 24) {
    if (s.charCodeAt(4) !== 45 || s.charCodeAt(7) !== 45 || s.charCodeAt(10) !== 84 || s.charCodeAt(13) !== 58 || s.charCodeAt(16) !== 58 || s.charCodeAt(19) !== 46 || s.charCodeAt(23) !== 90) return NaN;
    const y = digits(s, 0, 4);
    const mo = digits(s, 5, 2);
    const d = digits(s, 8, 2);
    const h = digits(s, 11, 2);
    const mi = digits(s, 14, 2);
    const sec = digits(s, 17, 2);
    const ms = digits(s, 20, 3);
    if (!(y >= 1970 && mo >= 1 && mo <= 12 && d >= 1 && h <= 23 && mi <= 59 && sec <= 59 && ms >= 0)) return NaN;
    const leap = mo === 2 && y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0);
    if (d > DAYS[mo - 1]! + (leap ? 1 : 0)) return NaN;
    // days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil; y ≥ 1970 here)
    const yy = mo <= 2 ? y - 1 : y;
    const era = Math.floor(yy / 400);
    const yoe = yy - era * 400;
    const doy = Math.floor((153 * (mo > 2 ? mo - 3 : mo + 9) + 2) / 5) + d - 1;
    const days = era * 146097 + yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy - 719468;
    const t = ((days * 24 + h) * 60 + mi) * 60_000 + sec * 1000 + ms;
    return t < MAX_MS ? t : NaN;
  }
  const t = Date.parse(s);
  return Number.isFinite(t) && t >= 0 && t < MAX_MS && new Date(t).toISOString() === s ? t : NaN;
}

// ------------------------------------------------------------------------------------------------ checks

/** Checks the data key's part (also of what the KMS returns, before it is used); returns the message of the first problem. */
export function keyPartProblem(k: SealedKeyPart): string | undefined {
  if (!DEK_NAME.test(k.dek)) return 'key_id is not a DEK name {data_type}_{classification}_{YYYYMM}';
  if (!KEK_ID.test(k.kek_id)) return 'kek_id is malformed';
  if (!Number.isInteger(k.kek_version) || k.kek_version < 1 || k.kek_version > 0xffffffff) return 'kek_version is not a positive integer';
  if (!KEK_ALG.test(k.kek_algorithm)) return 'kek_algorithm is malformed';
  if (k.wrapped_key.length <= WRAP_OVERHEAD || k.wrapped_key.length > 255) return 'wrapped_key has the wrong length';
  if (k.commitment.length !== COMMITMENT_BYTES) return 'commitment has the wrong length';
  return undefined;
}

/** Checks what both forms must agree on; returns the field. */
function check(f: SealedField, path?: string): SealedField {
  const m = DEK_NAME.exec(f.dek);
  if (!m) throw envelopeError('key_id is not a DEK name {data_type}_{classification}_{YYYYMM}', path);
  if (!ENCRYPTED.includes(f.classification) || m[2] !== f.classification) throw envelopeError('classification does not match key_id', path);
  if (!DATA_TYPE.test(f.data_type) || m[1] !== f.data_type) throw envelopeError('data_type does not match key_id', path);
  if (Number.isNaN(isoMs(f.encrypted_at))) throw envelopeError('encrypted_at is not an ISO 8601 UTC time with milliseconds', path);
  const problem = keyPartProblem(f);
  if (problem) throw envelopeError(problem, path);
  if (f.iv.length !== IV_BYTES) throw envelopeError('iv has the wrong length', path);
  if (f.tag.length !== TAG_BYTES) throw envelopeError('tag has the wrong length (truncated?)', path);
  return f;
}

function unknownVersion(v: string, path?: string): PalisadeError {
  return envelopeError(`unknown version ${v} (this SDK reads format version ${FORMAT_VERSION}; version 1 was never released and is not read)`, path);
}

// ------------------------------------------------------------------------------------------------ JSON form

/**
 * A JSON envelope from its members, made by a constructor rather than as an object literal. V8 pretenures an object
 * literal's allocation site once most of the objects made there are seen to survive (an application that keeps a
 * batch of envelopes, as a bulk insert does): from then on every envelope made there is born in the old generation
 * and keeps its ciphertext string (1.4 KB for a 1 KiB field) alive through young collections until the next full
 * GC, kept or not. Objects made by `new` are not pretenured (ADR 0016). The prototype is Object.prototype: a plain
 * object.
 */
function jsonEnvelope(this: FieldEnvelope, ciphertext: string, iv: string, tag: string, key_id: string, classification: EncryptedClassification, data_type: string, encrypted_at: string, kek_id: string, kek_version: number, kek_algorithm: string, wrapped_key: string, commitment: string) {
  this.v = 2;
  this.ciphertext = ciphertext;
  this.iv = iv;
  this.tag = tag;
  this.key_id = key_id;
  this.algorithm = FIELD_ALGORITHM;
  this.classification = classification;
  this.data_type = data_type;
  this.encrypted_at = encrypted_at;
  this.kek_id = kek_id;
  this.kek_version = kek_version;
  this.kek_algorithm = kek_algorithm;
  this.wrapped_key = wrapped_key;
  this.commitment = commitment;
}
jsonEnvelope.prototype = Object.prototype;
export const JsonEnvelope = jsonEnvelope as unknown as new (...members: Parameters<typeof jsonEnvelope>) => FieldEnvelope;

export function toJsonEnvelope(f: SealedField): FieldEnvelope {
  return new JsonEnvelope(f.ciphertext.toString('base64'), f.iv.toString('base64'), f.tag.toString('base64'), f.dek, f.classification, f.data_type, f.encrypted_at, f.kek_id, f.kek_version, f.kek_algorithm, f.wrapped_key.toString('base64'), f.commitment.toString('base64'));
}

export const JSON_KEYS: readonly string[] = Object.keys(toJsonEnvelope({ dek: '', classification: 'internal', data_type: '', encrypted_at: '', kek_id: '', kek_version: 1, kek_algorithm: '', wrapped_key: Buffer.alloc(0), commitment: Buffer.alloc(0), iv: Buffer.alloc(0), ciphertext: Buffer.alloc(0), tag: Buffer.alloc(0) })).sort();
const JSON_KEY_SET = new Set(JSON_KEYS);

/** Are the own keys of `e` exactly the members of the JSON envelope? */
export function hasExactJsonKeys(e: object): boolean {
  const keys = Object.keys(e);
  if (keys.length !== JSON_KEYS.length) return false;
  for (const k of keys) if (!JSON_KEY_SET.has(k)) return false;
  return true;
}

/**
 * For the cached path, which reads and checks every member of the envelope itself: is `e` a plain object with as many
 * enumerable members as the envelope has? (for-in needs no array of keys; with Object.prototype as the prototype,
 * every member it counts is own, unless Object.prototype itself was given enumerable members, which make the count
 * wrong and the answer false.) hasExactJsonKeys is the check that names what is wrong.
 */
export function hasJsonMemberCount(e: object): boolean {
  if (Object.getPrototypeOf(e) !== Object.prototype) return false;
  let n = 0;
  for (const _ in e) n++;
  return n === JSON_KEYS.length;
}

/** Does this value look like a JSON envelope (an object with `v` and `key_id`)? Decoding still checks everything. */
export function isJsonEnvelope(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && 'key_id' in v && 'v' in v;
}

export function fromJsonEnvelope(e: unknown, path?: string): SealedField {
  if (!isJsonEnvelope(e)) throw envelopeError('is not an encrypted field envelope', path);
  if (e.v !== FORMAT_VERSION) throw unknownVersion(JSON.stringify(e.v) ?? String(e.v), path);
  if (!hasExactJsonKeys(e)) throw envelopeError(`envelope members must be exactly ${JSON_KEYS.join(', ')}`, path);
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
      commitment: fromB64(e.commitment, 'commitment', path),
      iv: fromB64(e.iv, 'iv', path),
      ciphertext: fromB64(e.ciphertext, 'ciphertext', path),
      tag: fromB64(e.tag, 'tag', path),
    },
    path,
  );
}

// ------------------------------------------------------------------------------------------------ compact form

/*
 * Compact form: `pf2.<key>.<seal>.<ciphertext>`, each part unpadded base64url.
 * - key: what names the data key, the same for every field under it (so it is encoded once per DEK): u8 length +
 *   DEK name (ASCII; it names data_type and classification), u8 length + KEK id, u32 big-endian KEK version, u8
 *   length + KEK algorithm, u8 length + wrapped key;
 * - seal: the fixed-size members, 66 bytes (88 characters): the data key's 32-byte commitment, the 6-byte big-endian
 *   encrypted_at in milliseconds since the epoch, the 12-byte IV and the 16-byte tag;
 * - ciphertext.
 * The JSON form's data_type and classification are the ones the DEK name spells (both decoders insist on that), and
 * its encrypted_at is the toISOString() of the milliseconds, so the two forms hold the same information.
 */
const PREFIX_DOT = `${COMPACT_PREFIX}.`;

/** The compact form's key part of a data key. */
export function encodeKeyPart(k: SealedKeyPart): string {
  const dek = Buffer.from(k.dek, 'latin1');
  const kek = Buffer.from(k.kek_id, 'latin1');
  const alg = Buffer.from(k.kek_algorithm, 'latin1');
  const b = Buffer.alloc(1 + dek.length + 1 + kek.length + 4 + 1 + alg.length + 1 + k.wrapped_key.length);
  let o = 0;
  o = b.writeUInt8(dek.length, o);
  o += dek.copy(b, o);
  o = b.writeUInt8(kek.length, o);
  o += kek.copy(b, o);
  o = b.writeUInt32BE(k.kek_version, o);
  o = b.writeUInt8(alg.length, o);
  o += alg.copy(b, o);
  o = b.writeUInt8(k.wrapped_key.length, o);
  k.wrapped_key.copy(b, o);
  return b.toString('base64url');
}

export function toCompact(f: SealedField): string {
  const seal = Buffer.alloc(SEAL_BYTES);
  f.commitment.copy(seal, SEAL_COMMITMENT);
  seal.writeUIntBE(isoMs(f.encrypted_at), SEAL_TIME, TIME_BYTES);
  f.iv.copy(seal, SEAL_IV);
  f.tag.copy(seal, SEAL_TAG);
  return `${PREFIX_DOT}${encodeKeyPart(f)}.${seal.toString('base64url')}.${f.ciphertext.toString('base64url')}`;
}

export function isCompactEnvelope(v: unknown): v is string {
  return typeof v === 'string' && v.startsWith(PREFIX_DOT);
}

const ANY_VERSION = /^pf(\d{1,9})\./;
/** A `pf<n>.` string of any format version (the current one or not): what a column of compact envelopes holds. */
export function looksLikeCompactEnvelope(v: unknown): v is string {
  return typeof v === 'string' && ANY_VERSION.test(v);
}

export function fromCompact(s: unknown, path?: string): SealedField {
  if (!isCompactEnvelope(s)) {
    const m = typeof s === 'string' ? ANY_VERSION.exec(s) : null;
    if (m) throw unknownVersion(m[1]!, path);
    throw envelopeError(`is not a compact encrypted field (${PREFIX_DOT}…)`, path);
  }
  const parts = s.split('.');
  if (parts.length !== 4) throw envelopeError(`compact form has ${parts.length - 1} parts after ${COMPACT_PREFIX}, not 3 (truncated?)`, path);
  const h = fromB64url(parts[1]!, 'key part', path);
  let o = 0;
  const take = (n: number, what: string): Buffer => {
    if (o + n > h.length) throw envelopeError(`key part ends inside ${what} (truncated?)`, path);
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
  const kek_id = str('kek_id');
  const kek_version = take(4, 'kek_version').readUInt32BE(0);
  const kek_algorithm = str('kek_algorithm');
  const wrapped_key = take(take(1, 'wrapped_key')[0]!, 'wrapped_key');
  if (o !== h.length) throw envelopeError('key part has trailing bytes', path);
  const named = dekNameParts(dek);
  if (!named) throw envelopeError('key_id is not a DEK name {data_type}_{classification}_{YYYYMM}', path);
  const seal = fromB64url(parts[2]!, 'seal part', path);
  if (seal.length !== SEAL_BYTES) throw envelopeError('seal part has the wrong length (commitment, encrypted_at, iv, tag; truncated?)', path);
  return check(
    {
      dek,
      classification: named.classification,
      data_type: named.data_type,
      encrypted_at: new Date(seal.readUIntBE(SEAL_TIME, TIME_BYTES)).toISOString(),
      kek_id,
      kek_version,
      kek_algorithm,
      wrapped_key,
      commitment: seal.subarray(SEAL_COMMITMENT, SEAL_TIME),
      iv: seal.subarray(SEAL_IV, SEAL_TAG),
      ciphertext: fromB64url(parts[3]!, 'ciphertext', path),
      tag: seal.subarray(SEAL_TAG, SEAL_BYTES),
    },
    path,
  );
}

// ------------------------------------------------------------------------------------------------ either form

/** Either form → the field; PAL_FIELD_ENVELOPE_INVALID when it is neither (a value in clear included). */
export function parseEnvelope(v: unknown, path?: string): { field: SealedField; form: EnvelopeForm } {
  if (looksLikeCompactEnvelope(v)) return { field: fromCompact(v, path), form: 'compact' };
  if (isJsonEnvelope(v)) return { field: fromJsonEnvelope(v, path), form: 'json' };
  throw envelopeError(`does not hold an encrypted field (neither the JSON envelope nor the ${PREFIX_DOT} compact form)`, path);
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

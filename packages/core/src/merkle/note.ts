/**
 * C2SP signed notes (c2sp.org/signed-note), transparency-log checkpoints (c2sp.org/tlog-checkpoint) and Ed25519
 * cosignatures (c2sp.org/tlog-cosignature, cosignature/v1), with Ed25519 through node:crypto only.
 *
 * Key strings follow golang.org/x/mod/sumdb/note: a verifier key is `<name>+<8 hex key ID>+<base64(type || key)>`,
 * a signer key `PRIVATE+KEY+<name>+<8 hex key ID>+<base64(type || 32-byte seed)>`, where the key ID is
 * SHA-256(name || "\n" || type || public key)[:4] and type is 0x01 (Ed25519 note signature) or 0x04 (timestamped
 * Ed25519 cosignature).
 *
 * Key strings are configuration: their parsers throw NoteKeyError. Notes, checkpoints and cosignatures arrive from
 * the network: their parsers and verifiers never throw, they return `{ ok: false, error }`.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign as edSign, verify as edVerify, type KeyObject } from 'node:crypto';
import { constantTimeEqual, sha256 } from '../crypto/index.js';
import { HASH_BYTES } from './hash.js';

/** Signature type 0x01: Ed25519 over the note text (c2sp.org/signed-note). */
export const NOTE_ED25519 = 0x01;
/** Signature type 0x04: timestamped Ed25519 witness cosignature (c2sp.org/tlog-cosignature, cosignature/v1). */
export const NOTE_COSIGNATURE_V1 = 0x04;
export type NoteKeyType = typeof NOTE_ED25519 | typeof NOTE_COSIGNATURE_V1;

/** More signature lines than this make a note malformed (the spec asks for at least 16; Go's sumdb/note allows 100). */
export const MAX_NOTE_SIGNATURES = 100;

const KEY_ID_BYTES = 4;
const ED25519_KEY_BYTES = 32;
const ED25519_SIG_BYTES = 64;
const TIMESTAMP_BYTES = 8;
const EM_DASH_SPACE = '\u2014 ';
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
/** Canonical standard base64 (RFC 4648 §4) with padding; `canonicalBase64` also checks the unused bits are zero. */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** A malformed or inconsistent key string. */
export class NoteKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NoteKeyError';
  }
}

// ---------------------------------------------------------------------------------------------------------------
// small helpers

function decodeBase64(s: string): Buffer | null {
  if (!BASE64.test(s)) return null;
  const b = Buffer.from(s, 'base64');
  return b.toString('base64') === s ? b : null;
}

/** True if `s` is well-formed UTF-16 (no lone surrogates), so that it encodes to UTF-8 and back unchanged. */
function wellFormed(s: string): boolean {
  return Buffer.from(s, 'utf8').toString('utf8') === s;
}

/** UTF-8 text without ASCII control characters other than newline (c2sp.org/signed-note §Format). */
function noteTextProblem(s: string): string | null {
  if (!wellFormed(s)) return 'not valid UTF-8';
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0009\u000b-\u001f]/.test(s)) return 'contains an ASCII control character other than newline';
  return null;
}

/** Key names: non-empty, valid UTF-8, no Unicode white space (the White_Space property, as Go's unicode.IsSpace) and no '+'. */
export function isValidKeyName(name: string): boolean {
  return typeof name === 'string' && name.length > 0 && wellFormed(name) && !/[\p{White_Space}+]/u.test(name);
}

function checkType(type: number): asserts type is NoteKeyType {
  if (type !== NOTE_ED25519 && type !== NOTE_COSIGNATURE_V1) throw new NoteKeyError(`unsupported note key type 0x${type.toString(16).padStart(2, '0')}`);
}

/** The key ID: SHA-256(name || 0x0A || type || 32-byte Ed25519 public key)[:4]. */
export function noteKeyHash(name: string, type: NoteKeyType, publicKey: Uint8Array): Buffer {
  if (!isValidKeyName(name)) throw new NoteKeyError('invalid key name (empty, or contains white space or "+")');
  checkType(type);
  if (publicKey.length !== ED25519_KEY_BYTES) throw new NoteKeyError('an Ed25519 public key is 32 bytes');
  return sha256(Buffer.concat([Buffer.from(`${name}\n`, 'utf8'), Buffer.of(type), publicKey])).subarray(0, KEY_ID_BYTES);
}

function ed25519PublicKey(raw: Uint8Array): KeyObject {
  if (raw.length !== ED25519_KEY_BYTES) throw new NoteKeyError('an Ed25519 public key is 32 bytes');
  try {
    return createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
  } catch {
    throw new NoteKeyError('not an Ed25519 public key');
  }
}

function ed25519PrivateKey(seed: Uint8Array): KeyObject {
  if (seed.length !== ED25519_KEY_BYTES) throw new NoteKeyError('an Ed25519 private key seed is 32 bytes');
  return createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
}

/** The 32 raw bytes of an Ed25519 public key (given as a KeyObject, public or private, or already raw). */
function rawPublicKey(key: KeyObject | Uint8Array): Buffer {
  if (!(key instanceof Uint8Array)) {
    if (key.asymmetricKeyType !== 'ed25519') throw new NoteKeyError('not an Ed25519 key');
    const pub = key.type === 'private' ? createPublicKey(key) : key;
    return Buffer.from(pub.export({ format: 'jwk' }).x!, 'base64url');
  }
  if (key.length !== ED25519_KEY_BYTES) throw new NoteKeyError('an Ed25519 public key is 32 bytes');
  return Buffer.from(key);
}

function seedOf(key: KeyObject): Buffer {
  if (key.type !== 'private' || key.asymmetricKeyType !== 'ed25519') throw new NoteKeyError('not an Ed25519 private key');
  return Buffer.from(key.export({ format: 'jwk' }).d!, 'base64url');
}

/** Split `s` at its first `n` '+' signs (base64 key material may itself contain '+'). */
function cutPlus(s: string, n: number): string[] | null {
  const parts: string[] = [];
  let rest = s;
  for (let i = 0; i < n; i++) {
    const at = rest.indexOf('+');
    if (at < 0) return null;
    parts.push(rest.slice(0, at));
    rest = rest.slice(at + 1);
  }
  parts.push(rest);
  return parts;
}

function parseKeyHash(hex: string): Buffer {
  if (!/^[0-9a-fA-F]{8}$/.test(hex)) throw new NoteKeyError('the key ID must be 8 hex digits');
  return Buffer.from(hex, 'hex');
}

// ---------------------------------------------------------------------------------------------------------------
// verifier keys

/** A parsed verifier key. `verify` checks one note signature (the bytes after the key ID) over a note text. */
export interface NoteVerifier {
  readonly name: string;
  readonly keyHash: Buffer;
  readonly type: NoteKeyType;
  readonly publicKey: KeyObject;
  /** The 32-byte Ed25519 public key. */
  readonly rawPublicKey: Buffer;
  /** The canonical verifier key string. */
  readonly vkey: string;
  /** Type 0x01: Ed25519 over `text`. Type 0x04: `signature` is timestamp(8) || Ed25519 over the cosignature/v1 message. */
  verify(text: string | Uint8Array, signature: Uint8Array): boolean;
}

/** Encode a verifier key string for `name` and an Ed25519 public key (KeyObject or 32 raw bytes). */
export function encodeVerifierKey(name: string, publicKey: KeyObject | Uint8Array, type: NoteKeyType = NOTE_ED25519): string {
  const raw = rawPublicKey(publicKey);
  const hash = noteKeyHash(name, type, raw);
  return `${name}+${hash.toString('hex')}+${Buffer.concat([Buffer.of(type), raw]).toString('base64')}`;
}

function makeVerifier(name: string, type: NoteKeyType, raw: Buffer): NoteVerifier {
  const publicKey = ed25519PublicKey(raw);
  const keyHash = noteKeyHash(name, type, raw);
  const vkey = `${name}+${keyHash.toString('hex')}+${Buffer.concat([Buffer.of(type), raw]).toString('base64')}`;
  const verify = (text: string | Uint8Array, signature: Uint8Array): boolean => {
    try {
      const t = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
      if (type === NOTE_ED25519) return signature.length === ED25519_SIG_BYTES && edVerify(null, t, publicKey, signature);
      if (signature.length !== TIMESTAMP_BYTES + ED25519_SIG_BYTES) return false;
      const ts = Buffer.from(signature.subarray(0, TIMESTAMP_BYTES)).readBigUInt64BE(0);
      if (ts > BigInt(Number.MAX_SAFE_INTEGER)) return false;
      const msg = cosignatureMessage(Buffer.from(t).toString('utf8'), Number(ts));
      return msg !== null && edVerify(null, msg, publicKey, signature.subarray(TIMESTAMP_BYTES));
    } catch {
      return false;
    }
  };
  return { name, keyHash, type, publicKey, rawPublicKey: raw, vkey, verify };
}

/** Parse `<name>+<hash>+<base64(type || key)>` (type 0x01 or 0x04); throws NoteKeyError unless the key ID matches. */
export function parseVerifierKey(vkey: string): NoteVerifier {
  if (typeof vkey !== 'string') throw new NoteKeyError('a verifier key is a string');
  const parts = cutPlus(vkey, 2);
  if (!parts) throw new NoteKeyError('a verifier key is <name>+<key ID>+<key>');
  const [name, hex, b64] = parts as [string, string, string];
  if (!isValidKeyName(name)) throw new NoteKeyError('invalid key name in verifier key');
  const hash = parseKeyHash(hex);
  const key = decodeBase64(b64);
  if (!key || key.length === 0) throw new NoteKeyError('the verifier key material is not canonical base64');
  const type = key[0]!;
  checkType(type);
  if (key.length !== 1 + ED25519_KEY_BYTES) throw new NoteKeyError('an Ed25519 verifier key holds 32 bytes after the type');
  const v = makeVerifier(name, type, key.subarray(1));
  if (!constantTimeEqual(v.keyHash, hash)) throw new NoteKeyError(`the key ID ${hex} does not match the name and key`);
  return v;
}

/** The verifier key of the same Ed25519 public key as a cosignature/v1 (type 0x04) key, keeping the name. */
export function cosignatureVerifierKey(vkey: string | NoteVerifier): string {
  const v = typeof vkey === 'string' ? parseVerifierKey(vkey) : vkey;
  return encodeVerifierKey(v.name, v.rawPublicKey, NOTE_COSIGNATURE_V1);
}

// ---------------------------------------------------------------------------------------------------------------
// signer keys and signers

/**
 * Signs a note text, possibly with a key held elsewhere (a KMS): `sign` receives the exact bytes to sign for this key
 * type and returns the signature bytes that follow the key ID in the signature line.
 */
export interface NoteSigner {
  readonly name: string;
  /** The 4-byte key ID. */
  readonly keyHash: Uint8Array;
  sign(text: Buffer): Promise<Uint8Array> | Uint8Array;
}

/** A parsed signer key. */
export interface NoteSignerKey {
  readonly name: string;
  readonly keyHash: Buffer;
  readonly type: NoteKeyType;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  readonly rawPublicKey: Buffer;
  /** The matching verifier key string. */
  readonly vkey: string;
}

function signerKeyFromSeed(name: string, type: NoteKeyType, seed: Buffer): NoteSignerKey {
  const privateKey = ed25519PrivateKey(seed);
  const publicKey = createPublicKey(privateKey);
  const raw = rawPublicKey(publicKey);
  const keyHash = noteKeyHash(name, type, raw);
  return { name, keyHash, type, privateKey, publicKey, rawPublicKey: raw, vkey: encodeVerifierKey(name, raw, type) };
}

/** Parse `PRIVATE+KEY+<name>+<hash>+<base64(type || 32-byte seed)>`; throws NoteKeyError unless the key ID matches the derived public key. */
export function parseSignerKey(skey: string): NoteSignerKey {
  if (typeof skey !== 'string') throw new NoteKeyError('a signer key is a string');
  const parts = cutPlus(skey, 4);
  if (!parts || parts[0] !== 'PRIVATE' || parts[1] !== 'KEY') throw new NoteKeyError('a signer key is PRIVATE+KEY+<name>+<key ID>+<key>');
  const [, , name, hex, b64] = parts as [string, string, string, string, string];
  if (!isValidKeyName(name)) throw new NoteKeyError('invalid key name in signer key');
  const hash = parseKeyHash(hex);
  const key = decodeBase64(b64);
  if (!key || key.length === 0) throw new NoteKeyError('the signer key material is not canonical base64');
  const type = key[0]!;
  checkType(type);
  if (key.length !== 1 + ED25519_KEY_BYTES) throw new NoteKeyError('an Ed25519 signer key holds a 32-byte seed after the type');
  const seed = key.subarray(1);
  try {
    const k = signerKeyFromSeed(name, type, seed);
    if (!constantTimeEqual(k.keyHash, hash)) throw new NoteKeyError(`the key ID ${hex} does not match the name and key`);
    return k;
  } finally {
    key.fill(0);
  }
}

/** Encode a signer key string for `name` and an Ed25519 private KeyObject. The string is a secret. */
export function encodeSignerKey(name: string, privateKey: KeyObject, type: NoteKeyType = NOTE_ED25519): string {
  const seed = seedOf(privateKey);
  const hash = noteKeyHash(name, type, rawPublicKey(privateKey));
  const material = Buffer.concat([Buffer.of(type), seed]);
  const s = `PRIVATE+KEY+${name}+${hash.toString('hex')}+${material.toString('base64')}`;
  seed.fill(0);
  material.fill(0);
  return s;
}

/** A new Ed25519 key for `name`: the secret signer key string and its verifier key string. */
export function generateSignerKey(name: string, type: NoteKeyType = NOTE_ED25519): { skey: string; vkey: string } {
  if (!isValidKeyName(name)) throw new NoteKeyError('invalid key name (empty, or contains white space or "+")');
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { skey: encodeSignerKey(name, privateKey, type), vkey: encodeVerifierKey(name, publicKey, type) };
}

function asSignerKey(key: string | NoteSignerKey): NoteSignerKey {
  return typeof key === 'string' ? parseSignerKey(key) : key;
}

/** A NoteSigner producing plain Ed25519 note signatures (type 0x01). */
export function ed25519NoteSigner(key: string | NoteSignerKey): NoteSigner {
  const k = asSignerKey(key);
  if (k.type !== NOTE_ED25519) throw new NoteKeyError('an Ed25519 note signer needs a type 0x01 key');
  return { name: k.name, keyHash: k.keyHash, sign: (text) => edSign(null, text, k.privateKey) };
}

/**
 * A NoteSigner producing cosignature/v1 signatures (type 0x04): timestamp(8, big-endian) || Ed25519 over
 * `cosignature/v1\ntime <t>\n<text>`. A type 0x01 key is used as the same Ed25519 key under its type 0x04 key ID
 * (as transparency-dev/formats does). `now` gives the POSIX time in seconds (default: the clock).
 */
export function cosignatureSigner(key: string | NoteSignerKey, now: () => number = () => Math.floor(Date.now() / 1000)): NoteSigner {
  const k = asSignerKey(key);
  const keyHash = noteKeyHash(k.name, NOTE_COSIGNATURE_V1, k.rawPublicKey);
  return {
    name: k.name,
    keyHash,
    sign: (text) => {
      const t = now();
      const msg = cosignatureMessage(text.toString('utf8'), t);
      if (!msg) throw new RangeError('cosignature: the timestamp must be a non-negative safe integer and the text a checkpoint body');
      const ts = Buffer.alloc(TIMESTAMP_BYTES);
      ts.writeBigUInt64BE(BigInt(t));
      return Buffer.concat([ts, edSign(null, msg, k.privateKey)]);
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// signed notes

/** One signature line: the key name, the key ID and the signature bytes after it. */
export interface NoteSignature {
  readonly name: string;
  readonly keyHash: Buffer;
  readonly signature: Buffer;
}

export interface ParsedNote {
  /** The note text: everything up to and including the newline before the separating blank line. */
  readonly text: string;
  readonly signatures: NoteSignature[];
}

export type NoteParseResult = { ok: true; note: ParsedNote } | { ok: false; error: string };

/** `— <name> <base64(key ID || signature)>\n`. Throws NoteKeyError for an invalid name or key ID. */
export function formatSignatureLine(sig: NoteSignature): string {
  if (!isValidKeyName(sig.name)) throw new NoteKeyError('invalid key name in signature');
  if (sig.keyHash.length !== KEY_ID_BYTES || sig.signature.length === 0) throw new NoteKeyError('a signature is a 4-byte key ID and at least one byte');
  return `${EM_DASH_SPACE}${sig.name} ${Buffer.concat([sig.keyHash, sig.signature]).toString('base64')}\n`;
}

/** Parse one signature line (with or without its final newline). */
export function parseSignatureLine(line: string): { ok: true; signature: NoteSignature } | { ok: false; error: string } {
  if (typeof line !== 'string') return { ok: false, error: 'a signature line is a string' };
  const l = line.endsWith('\n') ? line.slice(0, -1) : line;
  if (!l.startsWith(EM_DASH_SPACE)) return { ok: false, error: 'a signature line starts with an em dash and a space' };
  const rest = l.slice(EM_DASH_SPACE.length);
  const sp = rest.indexOf(' ');
  if (sp < 0) return { ok: false, error: 'a signature line is "— <name> <signature>"' };
  const name = rest.slice(0, sp);
  if (!isValidKeyName(name)) return { ok: false, error: 'invalid key name in a signature line' };
  const blob = decodeBase64(rest.slice(sp + 1));
  if (!blob || blob.length < KEY_ID_BYTES + 1) return { ok: false, error: 'a signature is canonical base64 of a 4-byte key ID and at least one byte' };
  return { ok: true, signature: { name, keyHash: blob.subarray(0, KEY_ID_BYTES), signature: blob.subarray(KEY_ID_BYTES) } };
}

/**
 * Split a signed note into its text and signature lines, strictly: valid UTF-8, no control characters but newline,
 * text and signatures separated by the LAST blank line, at least one signature line, each well-formed and ending in
 * a newline, at most MAX_NOTE_SIGNATURES of them.
 */
export function parseNote(note: string | Uint8Array): NoteParseResult {
  let s: string;
  if (typeof note === 'string') s = note;
  else if (note instanceof Uint8Array) {
    try {
      s = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(note);
    } catch {
      return { ok: false, error: 'malformed note: not valid UTF-8' };
    }
  } else return { ok: false, error: 'malformed note: not text' };
  const bad = noteTextProblem(s);
  if (bad) return { ok: false, error: `malformed note: ${bad}` };
  const split = s.lastIndexOf('\n\n');
  if (split < 0) return { ok: false, error: 'malformed note: no blank line before the signatures' };
  const text = s.slice(0, split + 1);
  const block = s.slice(split + 2);
  if (block.length === 0 || !block.endsWith('\n')) return { ok: false, error: 'malformed note: the signature block must be non-empty and end in a newline' };
  const lines = block.slice(0, -1).split('\n');
  if (lines.length > MAX_NOTE_SIGNATURES) return { ok: false, error: `malformed note: more than ${MAX_NOTE_SIGNATURES} signatures` };
  const signatures: NoteSignature[] = [];
  for (const line of lines) {
    const p = parseSignatureLine(line);
    if (!p.ok) return { ok: false, error: `malformed note: ${p.error}` };
    signatures.push(p.signature);
  }
  return { ok: true, note: { text, signatures } };
}

/** Check that `text` can be the text of a signed note; throws TypeError if not. */
function checkNoteText(text: string): void {
  if (typeof text !== 'string' || !text.endsWith('\n')) throw new TypeError('a note text must end in a newline');
  const bad = noteTextProblem(text);
  if (bad) throw new TypeError(`a note text must be UTF-8 without control characters: it ${bad}`);
}

/** `text` + blank line + the signature lines. Throws on an invalid text or signature. */
export function formatNote(text: string, signatures: readonly NoteSignature[]): string {
  checkNoteText(text);
  if (signatures.length === 0) throw new TypeError('a signed note has at least one signature');
  return `${text}\n${signatures.map(formatSignatureLine).join('')}`;
}

/**
 * Sign `text` with each signer (in order) and return the signed note, after any `existing` signatures; an existing
 * signature with the same name and key ID as one of the signers is replaced. Throws if the text is not a valid note
 * text, a signer is invalid or its sign callback fails.
 */
export async function signNote(text: string, signers: readonly NoteSigner[], existing: readonly NoteSignature[] = []): Promise<string> {
  checkNoteText(text);
  const bytes = Buffer.from(text, 'utf8');
  const fresh: NoteSignature[] = [];
  for (const s of signers) {
    if (!isValidKeyName(s.name)) throw new NoteKeyError('invalid signer name');
    if (s.keyHash.length !== KEY_ID_BYTES) throw new NoteKeyError('a signer key ID is 4 bytes');
    const sig = Buffer.from(await s.sign(Buffer.from(bytes)));
    fresh.push({ name: s.name, keyHash: Buffer.from(s.keyHash), signature: sig });
  }
  const replaced = (e: NoteSignature) => fresh.some((f) => f.name === e.name && f.keyHash.equals(e.keyHash));
  return formatNote(text, [...existing.filter((e) => !replaced(e)), ...fresh]);
}

export interface OpenedNote {
  readonly text: string;
  /** Signatures by known keys, verified (one per key). */
  readonly verified: NoteSignature[];
  /** Signatures by unknown keys (duplicates dropped), not verified. */
  readonly unknown: NoteSignature[];
}

export type NoteOpenError = 'malformed' | 'unverified' | 'invalid-signature' | 'ambiguous-key';
export type NoteOpenResult = { ok: true; note: OpenedNote } | { ok: false; reason: NoteOpenError; error: string };

/**
 * Parse and verify a signed note against known verifiers (c2sp.org/signed-note §Signatures): signatures whose
 * (name, key ID) is unknown are ignored; every signature by a known key must verify ('invalid-signature'
 * otherwise); at least one must ('unverified'). Two known keys with the same name and key ID are 'ambiguous-key'.
 */
export function openNote(note: string | Uint8Array, verifiers: readonly NoteVerifier[]): NoteOpenResult {
  const p = parseNote(note);
  if (!p.ok) return { ok: false, reason: 'malformed', error: p.error };
  const { text, signatures } = p.note;
  const textBytes = Buffer.from(text, 'utf8');
  const verified: NoteSignature[] = [];
  const unknown: NoteSignature[] = [];
  const seen = new Set<string>();
  for (const sig of signatures) {
    const id = `${sig.name}+${sig.keyHash.toString('hex')}`;
    const matches = verifiers.filter((v) => v.name === sig.name && v.keyHash.equals(sig.keyHash));
    const distinct = new Set(matches.map((v) => `${v.type}:${v.rawPublicKey.toString('hex')}`));
    if (distinct.size > 1) return { ok: false, reason: 'ambiguous-key', error: `ambiguous key ${id}` };
    const v = matches[0];
    if (!v) {
      const line = `${id} ${sig.signature.toString('base64')}`;
      if (!seen.has(line)) unknown.push(sig);
      seen.add(line);
      continue;
    }
    if (!v.verify(textBytes, sig.signature)) return { ok: false, reason: 'invalid-signature', error: `invalid signature for key ${id}` };
    if (!seen.has(id)) verified.push(sig);
    seen.add(id);
  }
  if (verified.length === 0) return { ok: false, reason: 'unverified', error: 'the note has no signature by a known key' };
  return { ok: true, note: { text, verified, unknown } };
}

// ---------------------------------------------------------------------------------------------------------------
// checkpoints

export interface Checkpoint {
  /** The log identity: the first line, non-empty. */
  readonly origin: string;
  readonly size: number;
  /** The 32-byte RFC 6962 / RFC 9162 root hash. */
  readonly root: Buffer;
  /** Optional extension lines (non-empty each; their use is NOT RECOMMENDED by the spec). */
  readonly extensions: readonly string[];
}

export type CheckpointParseResult = { ok: true; checkpoint: Checkpoint } | { ok: false; error: string };

const SIZE = /^(?:0|[1-9][0-9]*)$/;

/** Parse a checkpoint note text (c2sp.org/tlog-checkpoint): origin, decimal size without leading zeros, base64 root, extension lines. */
export function parseCheckpoint(text: string): CheckpointParseResult {
  if (typeof text !== 'string') return { ok: false, error: 'a checkpoint is text' };
  const bad = noteTextProblem(text);
  if (bad) return { ok: false, error: `malformed checkpoint: ${bad}` };
  if (!text.endsWith('\n')) return { ok: false, error: 'malformed checkpoint: it must end in a newline' };
  const lines = text.slice(0, -1).split('\n');
  if (lines.length < 3) return { ok: false, error: 'malformed checkpoint: fewer than three lines' };
  const [origin, sizeText, rootText, ...extensions] = lines as [string, string, string, ...string[]];
  if (origin.length === 0) return { ok: false, error: 'malformed checkpoint: empty origin' };
  if (!SIZE.test(sizeText)) return { ok: false, error: 'malformed checkpoint: the size is not a decimal number without leading zeros' };
  const size = Number(sizeText);
  if (!Number.isSafeInteger(size)) return { ok: false, error: 'malformed checkpoint: the size is too large' };
  const root = decodeBase64(rootText);
  if (!root || root.length !== HASH_BYTES) return { ok: false, error: 'malformed checkpoint: the root hash is not base64 of 32 bytes' };
  if (extensions.some((l) => l.length === 0)) return { ok: false, error: 'malformed checkpoint: empty extension line' };
  return { ok: true, checkpoint: { origin, size, root, extensions } };
}

/** The checkpoint note text. Throws TypeError on an empty origin or one with a newline, a bad size or root, or an empty extension line. */
export function formatCheckpoint(c: { origin: string; size: number; root: Uint8Array; extensions?: readonly string[] }): string {
  if (typeof c.origin !== 'string' || c.origin.length === 0 || c.origin.includes('\n')) throw new TypeError('checkpoint origin must be a non-empty line');
  if (!Number.isSafeInteger(c.size) || c.size < 0) throw new TypeError('checkpoint size must be a non-negative safe integer');
  if (!(c.root instanceof Uint8Array) || c.root.length !== HASH_BYTES) throw new TypeError('checkpoint root must be 32 bytes');
  const ext = c.extensions ?? [];
  if (ext.some((l) => typeof l !== 'string' || l.length === 0 || l.includes('\n'))) throw new TypeError('checkpoint extension lines must be non-empty lines');
  const text = [c.origin, String(c.size), Buffer.from(c.root).toString('base64'), ...ext].map((l) => `${l}\n`).join('');
  checkNoteText(text);
  return text;
}

// ---------------------------------------------------------------------------------------------------------------
// cosignatures

/**
 * The cosignature/v1 signed message: `cosignature/v1\ntime <t>\n` + the checkpoint text (c2sp.org/tlog-cosignature
 * §Ed25519 signed message). Null unless `timestamp` is a non-negative safe integer and `text` has at least three lines.
 */
export function cosignatureMessage(text: string, timestamp: number): Buffer | null {
  if (!Number.isSafeInteger(timestamp) || timestamp < 0) return null;
  if (typeof text !== 'string' || !text.endsWith('\n') || text.split('\n').length < 4) return null;
  return Buffer.from(`cosignature/v1\ntime ${timestamp}\n${text}`, 'utf8');
}

/** Cosign a checkpoint text; returns the signature line `— <name> <base64(key ID || timestamp || signature)>\n`. */
export async function cosignCheckpoint(text: string, key: string | NoteSignerKey, timestamp: number = Math.floor(Date.now() / 1000)): Promise<string> {
  if (!parseCheckpoint(text).ok) throw new TypeError('cosignCheckpoint: not a checkpoint text');
  const s = cosignatureSigner(key, () => timestamp);
  return formatSignatureLine({ name: s.name, keyHash: Buffer.from(s.keyHash), signature: Buffer.from(await s.sign(Buffer.from(text, 'utf8'))) });
}

/** The timestamp of a cosignature/v1 signature (the bytes after the key ID), or null when it is not one. */
export function cosignatureTimestamp(signature: Uint8Array): number | null {
  if (signature.length !== TIMESTAMP_BYTES + ED25519_SIG_BYTES) return null;
  const t = Buffer.from(signature.subarray(0, TIMESTAMP_BYTES)).readBigUInt64BE(0);
  return t <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(t) : null;
}

export type CosignatureCheck = { ok: true; timestamp: number } | { ok: false; error: string };

/**
 * Verify one cosignature line over a checkpoint text with a witness's cosignature/v1 verifier key (type 0x04; a
 * type 0x01 key is taken as the same Ed25519 key under its 0x04 key ID). Returns the cosignature's timestamp.
 */
export function verifyCosignature(vkey: string | NoteVerifier, text: string, line: string): CosignatureCheck {
  let v: NoteVerifier;
  try {
    const parsed = typeof vkey === 'string' ? parseVerifierKey(vkey) : vkey;
    v = parsed.type === NOTE_COSIGNATURE_V1 ? parsed : parseVerifierKey(cosignatureVerifierKey(parsed));
  } catch (e) {
    return { ok: false, error: `bad witness key: ${(e as Error).message}` };
  }
  const cp = parseCheckpoint(text);
  if (!cp.ok) return { ok: false, error: cp.error };
  const p = parseSignatureLine(line);
  if (!p.ok) return { ok: false, error: p.error };
  const sig = p.signature;
  if (sig.name !== v.name || !sig.keyHash.equals(v.keyHash)) return { ok: false, error: `the line is not by ${v.name}+${v.keyHash.toString('hex')}` };
  const timestamp = cosignatureTimestamp(sig.signature);
  if (timestamp === null) return { ok: false, error: 'not a cosignature/v1 signature (key ID, 8-byte timestamp, 64-byte signature)' };
  if (!v.verify(text, sig.signature)) return { ok: false, error: `the cosignature by ${v.name} does not verify` };
  return { ok: true, timestamp };
}

// Authenticated encryption (AES-GCM, ChaCha20-Poly1305) over node:crypto. No primitive is implemented here.
import { createCipheriv, createDecipheriv } from 'node:crypto';
import type { CipherGCMTypes } from 'node:crypto';

/** Algorithms of the product path: 256-bit key, 96-bit nonce, 128-bit tag. */
export type AeadAlgorithm = 'AES-256-GCM' | 'CHACHA20-POLY1305';
/** Algorithms of the raw path; for AES-GCM the key length (16/24/32) selects AES-128/192/256. */
export type RawAeadAlgorithm = 'AES-GCM' | 'CHACHA20-POLY1305';

export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;
export const KEY_BYTES = 32;

/** Raised for unsupported parameters and for every failed open. Never carries plaintext or key material. */
export class AeadError extends Error {
  override readonly name = 'AeadError';
}

export interface AeadRawOptions {
  /** Tag length in bytes; default 16. AES-GCM allows 12..16 (NIST SP 800-38D), ChaCha20-Poly1305 only 16. */
  tagLength?: number;
}

export interface AeadSealed {
  ciphertext: Buffer;
  tag: Buffer;
}

const AUTH_FAILED = 'authentication failed';

// Checks the caller's configuration (algorithm, key length, tag length); returns the OpenSSL cipher name.
function cipherName(alg: RawAeadAlgorithm, key: Uint8Array, tagLength: number): CipherGCMTypes {
  if (alg === 'AES-GCM') {
    const bits = key.length * 8;
    if (bits !== 128 && bits !== 192 && bits !== 256) throw new AeadError('invalid key length');
    if (!Number.isInteger(tagLength) || tagLength < 12 || tagLength > 16) throw new AeadError('invalid tag length');
    return `aes-${bits}-gcm`;
  }
  if (alg === 'CHACHA20-POLY1305') {
    if (key.length !== 32) throw new AeadError('invalid key length');
    if (tagLength !== 16) throw new AeadError('invalid tag length');
    // Same Node API shape as GCM (authTagLength, setAAD, getAuthTag); the cast only picks the typed overload.
    return 'chacha20-poly1305' as CipherGCMTypes;
  }
  throw new AeadError('unsupported algorithm');
}

/** Longest AES-GCM IV accepted: OpenSSL 3 refuses IVs above 128 bytes (its GCM_IV_MAX_SIZE). */
export const MAX_GCM_IV_BYTES = 128;

// A zero-length GCM IV leaks the authentication key (CVE-2017-7822); other GCM IV lengths are hashed by GHASH.
// OpenSSL would accept short ChaCha20-Poly1305 nonces; RFC 8439 fixes 96 bits.
function nonceOk(alg: RawAeadAlgorithm, nonce: Uint8Array): boolean {
  return alg === 'AES-GCM' ? nonce.length > 0 && nonce.length <= MAX_GCM_IV_BYTES : nonce.length === 12;
}

/** Encrypts with any parameter set Wycheproof exercises that is still sound (see `cipherName`, `nonceOk`). */
export function aeadSealRaw(
  alg: RawAeadAlgorithm,
  key: Uint8Array,
  nonce: Uint8Array,
  plaintext: Uint8Array,
  aad?: Uint8Array,
  opts: AeadRawOptions = {},
): AeadSealed {
  const tagLength = opts.tagLength ?? TAG_BYTES;
  const name = cipherName(alg, key, tagLength);
  if (!nonceOk(alg, nonce)) throw new AeadError('invalid nonce length');
  return sealWith(name, key, nonce, plaintext, aad, tagLength);
}

function sealWith(name: CipherGCMTypes, key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array | undefined, tagLength: number): AeadSealed {
  const cipher = createCipheriv(name, key, nonce, { authTagLength: tagLength });
  if (aad !== undefined) cipher.setAAD(aad);
  const head = cipher.update(plaintext);
  const tail = cipher.final(); // empty for GCM and ChaCha20-Poly1305 (stream modes): skip the copy then
  return { ciphertext: tail.length === 0 ? head : Buffer.concat([head, tail]), tag: cipher.getAuthTag() };
}

/**
 * Decrypts and verifies. A bad algorithm, key length or tag-length option (caller bugs) get their own message;
 * everything that comes with the message (nonce, tag, ciphertext, AAD) fails with AeadError('authentication failed').
 * Plaintext is returned only after `final()` has verified the tag.
 */
export function aeadOpenRaw(
  alg: RawAeadAlgorithm,
  key: Uint8Array,
  nonce: Uint8Array,
  ciphertext: Uint8Array,
  tag: Uint8Array,
  aad?: Uint8Array,
  opts: AeadRawOptions = {},
): Buffer {
  const tagLength = opts.tagLength ?? TAG_BYTES;
  const name = cipherName(alg, key, tagLength);
  if (!nonceOk(alg, nonce) || tag.length !== tagLength) throw new AeadError(AUTH_FAILED);
  let head: Buffer | undefined;
  try {
    const decipher = createDecipheriv(name, key, nonce, { authTagLength: tagLength });
    decipher.setAuthTag(tag);
    if (aad !== undefined) decipher.setAAD(aad);
    head = decipher.update(ciphertext);
    const tail = decipher.final(); // throws unless the tag verifies
    return tail.length === 0 ? head : Buffer.concat([head, tail]);
  } catch {
    head?.fill(0); // unauthenticated plaintext never leaves this function
    throw new AeadError(AUTH_FAILED);
  }
}

// The product path accepts only 256-bit keys, 96-bit nonces and 128-bit tags.
function productAlg(alg: AeadAlgorithm): RawAeadAlgorithm {
  if (alg === 'AES-256-GCM') return 'AES-GCM';
  if (alg === 'CHACHA20-POLY1305') return alg;
  throw new AeadError('unsupported algorithm');
}

/** Encrypts with a 32-byte key and a 12-byte nonce; returns ciphertext and a 16-byte tag. */
export function aeadSeal(
  alg: AeadAlgorithm,
  key: Uint8Array,
  nonce: Uint8Array,
  plaintext: Uint8Array,
  aad?: Uint8Array,
): AeadSealed {
  const name = PRODUCT_CIPHERS[alg];
  if (name === undefined) throw new AeadError('unsupported algorithm');
  if (key.length !== KEY_BYTES) throw new AeadError('invalid key length');
  if (nonce.length !== NONCE_BYTES) throw new AeadError('invalid nonce length');
  return sealWith(name, key, nonce, plaintext, aad, TAG_BYTES); // the hot path: no re-validation
}

const PRODUCT_CIPHERS: Record<string, CipherGCMTypes | undefined> = { 'AES-256-GCM': 'aes-256-gcm', 'CHACHA20-POLY1305': 'chacha20-poly1305' as CipherGCMTypes };

/** Decrypts and verifies; AeadError('authentication failed') unless nonce, tag, ciphertext and AAD are intact. */
export function aeadOpen(
  alg: AeadAlgorithm,
  key: Uint8Array,
  nonce: Uint8Array,
  ciphertext: Uint8Array,
  tag: Uint8Array,
  aad?: Uint8Array,
): Buffer {
  const raw = productAlg(alg);
  if (key.length !== KEY_BYTES) throw new AeadError('invalid key length');
  if (nonce.length !== NONCE_BYTES || tag.length !== TAG_BYTES) throw new AeadError(AUTH_FAILED);
  return aeadOpenRaw(raw, key, nonce, ciphertext, tag, aad);
}

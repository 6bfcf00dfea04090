// Randomness, hashing, MAC, KDF and constant-time comparison, all delegated to node:crypto.
import { createHash, createHmac, hkdfSync, randomBytes as nodeRandomBytes, timingSafeEqual } from 'node:crypto';

/** Bytes to hash or MAC; strings are taken as UTF-8. */
export type BytesLike = Uint8Array | string;

/** `n` bytes from the OS CSPRNG. */
export function randomBytes(n: number): Buffer {
  return nodeRandomBytes(n);
}

export const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567'; // RFC 4648 §6 alphabet, lower-cased
const PREFIX = /^[a-z][a-z0-9_-]*$/;

// RFC 4648 base32 without padding (an encoding, not a cryptographic primitive).
export function base32(bytes: Uint8Array): string {
  let out = '';
  let acc = 0;
  let bits = 0;
  for (const b of bytes) {
    acc = ((acc << 8) | b) & 0xfff; // at most 12 live bits are ever needed
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += BASE32[(acc >> bits) & 31];
    }
  }
  if (bits > 0) out += BASE32[(acc << (5 - bits)) & 31];
  return out;
}

/**
 * A random identifier `${prefix}_${base32}`, e.g. `key_4fzq…` (26 random chars for 16 bytes): URL-safe, no padding.
 * The random part never contains `_`, so it is everything after the last `_`. Prefix: /^[a-z][a-z0-9_-]*$/.
 */
export function randomId(prefix: string, bytes = 16): string {
  if (!PREFIX.test(prefix)) throw new TypeError('randomId: prefix must match /^[a-z][a-z0-9_-]*$/');
  if (!Number.isInteger(bytes) || bytes < 1 || bytes > 64) throw new RangeError('randomId: bytes must be 1..64');
  return `${prefix}_${base32(nodeRandomBytes(bytes))}`;
}

/** Compares in time independent of the content; different lengths return false (only the length can leak). */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  return timingSafeEqual(a, b);
}

export function sha256(data: BytesLike): Buffer {
  return createHash('sha256').update(data).digest();
}

export function hmacSha256(key: Uint8Array, data: BytesLike): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

/** RFC 5869 HKDF with SHA-256; `length` is 1..8160 bytes. */
export function hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: BytesLike, length: number): Buffer {
  return Buffer.from(hkdfSync('sha256', ikm, salt, info, length));
}

import { randomBytes, sha256 } from '@palisade/core';

/**
 * One-time recovery codes: shown once at enrolment, stored only as hashes, spent on use by the caller.
 *
 * Each code is 10 random bytes (80 bits) written as 16 symbols of Crockford's base32 alphabet (no i, l, o or u), in
 * groups of four: `7k2m-x9qd-0hbt-5wrz`. Normalisation reads the look-alikes a person may type for them (o as 0, i and
 * l as 1), so a code copied from paper matches.
 */
export const RECOVERY_CODE_ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';
const CODE_BYTES = 10;
const GROUP = 4;

function encode(bytes: Buffer): string {
  let out = '';
  let acc = 0;
  let bits = 0;
  for (const b of bytes) {
    acc = ((acc << 8) | b) & 0xfff;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += RECOVERY_CODE_ALPHABET[(acc >> bits) & 31];
    }
  }
  return out; // 80 bits are exactly 16 symbols: nothing left over
}

/** `count` distinct codes, formatted for display. */
export function generateRecoveryCodes(count = 10): string[] {
  if (!Number.isSafeInteger(count) || count < 1 || count > 100) throw new RangeError('generateRecoveryCodes: count must be 1..100');
  const codes = new Set<string>();
  while (codes.size < count) {
    const symbols = encode(randomBytes(CODE_BYTES));
    codes.add(symbols.match(new RegExp(`.{${GROUP}}`, 'g'))!.join('-'));
  }
  return [...codes];
}

/** The canonical form that is hashed: no spaces or dashes, lower case, look-alikes mapped to their digit. */
export function normaliseRecoveryCode(input: string): string {
  return input
    .replace(/[\s-]+/g, '')
    .toLowerCase()
    .replace(/o/g, '0')
    .replace(/[il]/g, '1');
}

/**
 * What is stored: SHA-256 of the normalised code. A code carries 80 random bits, so (as for API keys) a slow password
 * hash adds nothing: guessing 2^80 codes is out of reach at any hash speed, and a fast hash lets the caller find the
 * code by an indexed lookup and compare in constant time.
 */
export function hashRecoveryCode(code: string): Buffer {
  return sha256(Buffer.from(normaliseRecoveryCode(code), 'utf8'));
}

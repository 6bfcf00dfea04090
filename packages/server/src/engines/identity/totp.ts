import { createHmac, timingSafeEqual } from 'node:crypto';
import { PalisadeError, randomBytes } from '@palisade/core';

/** HOTP (RFC 4226) and TOTP (RFC 6238) on node:crypto's HMAC, plus the base32 and `otpauth://` forms apps read. */

export type OtpAlgorithm = 'SHA1' | 'SHA256' | 'SHA512';
export type OtpDigits = 6 | 7 | 8;

export interface HotpOptions {
  digits?: OtpDigits;
  algorithm?: OtpAlgorithm;
}

export interface TotpOptions extends HotpOptions {
  /** Seconds per step (X in RFC 6238); T0 is the Unix epoch. */
  period?: number;
}

export interface VerifyTotpOptions extends TotpOptions {
  /** Steps accepted either side of the current one, for clock drift and typing time (RFC 6238 §5.2). Default 1. */
  window?: number;
  /** The step of the last code accepted for this secret: that step and earlier ones are refused, so a code works once. */
  lastStep?: number | null;
}

export type VerifyTotpResult = { ok: true; step: number } | { ok: false; reason: 'invalid_code' | 'replayed' };

const DEFAULTS = { digits: 6, algorithm: 'SHA1', period: 30 } as const;
const HMAC_NAME: Record<OtpAlgorithm, string> = { SHA1: 'sha1', SHA256: 'sha256', SHA512: 'sha512' };
const BASE32_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
const MAX_WINDOW = 10;

/** RFC 4648 base32, upper-case, without padding (as authenticator apps and the Key Uri Format expect). */
export function base32Encode(buf: Buffer): string {
  let out = '';
  let acc = 0;
  let bits = 0;
  for (const b of buf) {
    acc = ((acc << 8) | b) & 0xfff; // at most 12 live bits are ever needed
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += BASE32_ALPHABET[(acc >> bits) & 31];
    }
  }
  if (bits > 0) out += BASE32_ALPHABET[(acc << (5 - bits)) & 31];
  return out;
}

/**
 * RFC 4648 base32 to bytes. Accepts what people paste: lower case, spaces between groups, trailing `=` padding.
 * A foreign character, padding in the middle or an impossible length is PAL_VALIDATION_FAILED. Leftover bits of the
 * last character are ignored (RFC 4648 §3.5 lets decoders choose): some issuers make secrets as random base32 text.
 */
export function base32Decode(s: string): Buffer {
  const bad = (why: string) => new PalisadeError('PAL_VALIDATION_FAILED', `invalid base32: ${why}`);
  const text = s.replace(/\s+/g, '').toUpperCase().replace(/=+$/, '');
  // Valid unpadded lengths mod 8 are 0, 2, 4, 5 and 7 (1, 2, 3 or 4 trailing bytes, or none).
  if (![0, 2, 4, 5, 7].includes(text.length % 8)) throw bad('impossible length');
  const out: number[] = [];
  let acc = 0;
  let bits = 0;
  for (const ch of text) {
    const v = BASE32_ALPHABET.indexOf(ch);
    if (v < 0) throw bad(ch === '=' ? 'padding before the end' : 'character outside the alphabet');
    acc = ((acc << 5) | v) & 0xfff;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((acc >> bits) & 0xff);
    }
  }
  return Buffer.from(out);
}

function counterBytes(counter: bigint | number): Buffer {
  const c = typeof counter === 'bigint' ? counter : Number.isSafeInteger(counter) ? BigInt(counter) : -1n;
  if (c < 0n || c > 0xffff_ffff_ffff_ffffn) throw new PalisadeError('PAL_VALIDATION_FAILED', 'the HOTP counter must be an integer in 0..2^64-1');
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(c);
  return b;
}

function checkDigits(digits: number): void {
  if (digits !== 6 && digits !== 7 && digits !== 8) throw new PalisadeError('PAL_VALIDATION_FAILED', 'OTP digits must be 6, 7 or 8');
}

/** RFC 4226 §5.3: HMAC over the 8-byte big-endian counter, dynamic truncation, modulo 10^digits, zero-padded. */
export function hotp(secret: Buffer, counter: bigint | number, opts: HotpOptions = {}): string {
  const digits = opts.digits ?? DEFAULTS.digits;
  checkDigits(digits);
  const algorithm = HMAC_NAME[opts.algorithm ?? DEFAULTS.algorithm];
  if (!algorithm) throw new PalisadeError('PAL_VALIDATION_FAILED', 'OTP algorithm must be SHA1, SHA256 or SHA512');
  const mac = createHmac(algorithm, secret).update(counterBytes(counter)).digest();
  // The offset is the low nibble of the LAST byte (RFC 4226 errata 6756): byte 19 only for SHA-1's 20-byte digest.
  const offset = mac[mac.length - 1]! & 0x0f;
  const binary = mac.readUInt32BE(offset) & 0x7fff_ffff;
  return String(binary % 10 ** digits).padStart(digits, '0');
}

function periodOf(opts: TotpOptions): number {
  const period = opts.period ?? DEFAULTS.period;
  if (!Number.isSafeInteger(period) || period < 1) throw new PalisadeError('PAL_VALIDATION_FAILED', 'the TOTP period must be a positive integer of seconds');
  return period;
}

/** The time step of an instant: floor((unix seconds - T0) / period), T0 = 0. */
export function totpStep(timeMs: number, period: number = DEFAULTS.period): number {
  return Math.floor(Math.floor(timeMs / 1000) / period);
}

/** RFC 6238: HOTP with the time step as the counter. */
export function totp(secret: Buffer, timeMs: number, opts: TotpOptions = {}): string {
  return hotp(secret, totpStep(timeMs, periodOf(opts)), opts);
}

/**
 * Checks a code against every step of the window, always all of them and with a constant-time comparison, so the
 * time does not tell which step (if any) matched. A code of the wrong length or with non-digits is refused at once:
 * that reveals only the expected length, which is public. A match at or before `lastStep` is `replayed`; the caller
 * stores the returned `step` as the new `lastStep` (atomically, so two concurrent uses cannot both pass).
 */
export function verifyTotp(secret: Buffer, code: string, nowMs: number, opts: VerifyTotpOptions = {}): VerifyTotpResult {
  const digits = opts.digits ?? DEFAULTS.digits;
  checkDigits(digits);
  const period = periodOf(opts);
  const window = opts.window ?? 1;
  if (!Number.isSafeInteger(window) || window < 0 || window > MAX_WINDOW) {
    throw new PalisadeError('PAL_VALIDATION_FAILED', `the TOTP window must be an integer in 0..${MAX_WINDOW}`);
  }
  const given = typeof code === 'string' ? code.replace(/\s+/g, '') : '';
  if (given.length !== digits || !/^\d+$/.test(given)) return { ok: false, reason: 'invalid_code' };
  const givenBytes = Buffer.from(given, 'ascii');
  const current = totpStep(nowMs, period);
  let matched: number | null = null;
  for (let step = current - window; step <= current + window; step++) {
    if (step < 0) continue;
    const expected = Buffer.from(hotp(secret, step, { digits, algorithm: opts.algorithm ?? DEFAULTS.algorithm }), 'ascii');
    // Keep the latest matching step; no early exit. Two steps sharing a code is a 10^-6 coincidence, and the later one
    // is the safer one to record as used.
    if (timingSafeEqual(expected, givenBytes)) matched = step;
  }
  if (matched === null) return { ok: false, reason: 'invalid_code' };
  if (opts.lastStep !== undefined && opts.lastStep !== null && matched <= opts.lastStep) return { ok: false, reason: 'replayed' };
  return { ok: true, step: matched };
}

/** A new shared secret: 160 bits, the length RFC 4226 §4 (R6) recommends (at least 128 are required). */
export function newTotpSecret(): Buffer {
  return randomBytes(20);
}

export interface OtpauthUriInput {
  secret: Buffer;
  account: string;
  issuer: string;
  digits?: OtpDigits;
  period?: number;
  algorithm?: OtpAlgorithm;
}

/**
 * Key Uri Format (Google Authenticator wiki): `otpauth://totp/Issuer:account?secret=…&issuer=…&algorithm=…&digits=…&period=…`.
 * Issuer and account are percent-encoded separately, so a `:` inside either cannot move the label's separator.
 */
export function otpauthUri(input: OtpauthUriInput): string {
  const digits = input.digits ?? DEFAULTS.digits;
  checkDigits(digits);
  const period = periodOf(input);
  const algorithm = input.algorithm ?? DEFAULTS.algorithm;
  if (!HMAC_NAME[algorithm]) throw new PalisadeError('PAL_VALIDATION_FAILED', 'OTP algorithm must be SHA1, SHA256 or SHA512');
  const label = `${encodeURIComponent(input.issuer)}:${encodeURIComponent(input.account)}`;
  const query = [
    `secret=${base32Encode(input.secret)}`,
    `issuer=${encodeURIComponent(input.issuer)}`,
    `algorithm=${algorithm}`,
    `digits=${digits}`,
    `period=${period}`,
  ].join('&');
  return `otpauth://totp/${label}?${query}`;
}
